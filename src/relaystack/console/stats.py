"""Request rate, latency and errors of this process's inference requests, for the console's charts.

``TrafficStats.add`` is called once per finished inference request (from the same hook as the
access log, ``RelaystackApp._inference_ended``). It adds to a ten-second bucket: a request
count, errors by kind, a latency histogram and tokens; buckets older than an hour are dropped
when a new one starts. ``snapshot`` turns them into the JSON the console draws, p50 and p95
read off the histograms.

Per process: with ``--workers N`` each worker answers with its own requests (the snapshot says
which worker and how many there are). ``GET /metrics`` (Prometheus) is the cross-worker view.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from typing import Any

from relaystack.context import RequestContext

__all__ = ["LATENCY_BOUNDS_MS", "TrafficStats"]

# upper bounds of the latency histogram's buckets (ms); one more bucket holds anything slower
LATENCY_BOUNDS_MS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
                     30_000.0, 60_000.0, 120_000.0)
_CLIENT_CLOSED = 499
# distinct models counted separately; the rest are summed as "other" (a client picks model ids)
_MAX_MODELS = 200


class _Bucket:
    __slots__ = ("cancelled", "client_errors", "histogram", "latency_max", "latency_sum", "requests",
                 "server_errors", "start", "tokens")

    def __init__(self, start: float) -> None:
        self.start = start
        self.requests = 0
        self.server_errors = 0
        self.client_errors = 0
        self.cancelled = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.tokens = 0
        self.histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)


class _ModelTotals:
    __slots__ = ("errors", "latency_sum", "requests", "tokens")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency_sum = 0.0
        self.tokens = 0


class TrafficStats:
    def __init__(
        self, bucket_s: int = 10, keep_s: int = 3600, *, workers: int = 1,
        clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket_s = bucket_s
        self.keep = keep_s // bucket_s
        self.workers = workers
        self._clock = clock
        self._monotonic = monotonic
        self._since = clock()
        self._buckets: dict[int, _Bucket] = {}
        self._current: tuple[int, _Bucket] | None = None
        self._models: dict[str, _ModelTotals] = {}

    def add(self, ctx: RequestContext) -> None:
        """One finished inference request (its status, latency, model and usage)."""
        index = int(self._clock() // self.bucket_s)
        current = self._current
        bucket = current[1] if current is not None and current[0] == index else self._open(index)
        latency_ms = (self._monotonic() - ctx.started) * 1000.0
        status = ctx.status or 500
        tokens = _tokens(ctx.usage)
        bucket.requests += 1
        if status >= 500:
            bucket.server_errors += 1
        elif status == _CLIENT_CLOSED:
            bucket.cancelled += 1
        elif status >= 400:
            bucket.client_errors += 1
        bucket.histogram[bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1
        bucket.latency_sum += latency_ms
        if latency_ms > bucket.latency_max:
            bucket.latency_max = latency_ms
        bucket.tokens += tokens
        totals = self._models.get(ctx.model or "(none)") or self._model_totals(ctx.model or "(none)")
        totals.requests += 1
        totals.errors += status >= 500
        totals.latency_sum += latency_ms
        totals.tokens += tokens

    def _open(self, index: int) -> _Bucket:
        """The bucket of ``index`` (a new ten seconds): made once, old ones dropped then."""
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket(index * self.bucket_s)
            for old in [i for i in self._buckets if i <= index - self.keep]:
                del self._buckets[old]
        self._current = (index, bucket)
        return bucket

    def _model_totals(self, model: str) -> _ModelTotals:
        totals = self._models.get(model)
        if totals is None:
            if len(self._models) >= _MAX_MODELS:
                model = "(other)"
                totals = self._models.get(model)
            if totals is None:
                totals = self._models[model] = _ModelTotals()
        return totals

    def snapshot(self, window_s: int = 900) -> dict[str, Any]:
        """The last ``window_s`` seconds (at most the hour kept), bucket by bucket, oldest first."""
        count = max(1, min(self.keep, window_s // self.bucket_s))
        last = int(self._clock() // self.bucket_s)
        buckets = []
        overall = _Bucket(0.0)
        for index in range(last - count + 1, last + 1):
            bucket = self._buckets.get(index) or _Bucket(index * self.bucket_s)
            buckets.append(_bucket_json(bucket))
            _merge(overall, bucket)
        total = _bucket_json(overall)
        del total["start"]
        return {
            "object": "console.stats",
            "bucket_s": self.bucket_s,
            "window_s": count * self.bucket_s,
            "now": round(self._clock(), 3),
            "since": round(self._since, 3),
            "pid": os.getpid(),
            "workers": self.workers,
            "buckets": buckets,
            "total": total,
            "models": [
                {"model": model, "requests": t.requests, "errors": t.errors, "tokens": t.tokens,
                 "mean_ms": round(t.latency_sum / t.requests, 1) if t.requests else None}
                for model, t in sorted(self._models.items(), key=lambda item: -item[1].requests)
            ],
        }


def _tokens(usage: Mapping[str, Any] | None) -> int:
    """Prompt + completion tokens of an OpenAI (or Responses) usage object, 0 when unknown."""
    if usage is None:
        return 0
    if usage.__class__ is dict:  # the common case: OpenAI's two counts, both plain ints
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if prompt.__class__ is int and completion.__class__ is int and prompt >= 0 and completion >= 0:
            return int(prompt + completion)
    elif not isinstance(usage, Mapping):
        return 0
    total = 0
    for name in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens"):
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            total += value
    return total


def _merge(into: _Bucket, bucket: _Bucket) -> None:
    into.requests += bucket.requests
    into.server_errors += bucket.server_errors
    into.client_errors += bucket.client_errors
    into.cancelled += bucket.cancelled
    into.latency_sum += bucket.latency_sum
    into.latency_max = max(into.latency_max, bucket.latency_max)
    into.tokens += bucket.tokens
    for i, n in enumerate(bucket.histogram):
        into.histogram[i] += n


def _bucket_json(bucket: _Bucket) -> dict[str, Any]:
    return {
        "start": bucket.start,
        "requests": bucket.requests,
        "server_errors": bucket.server_errors,
        "client_errors": bucket.client_errors,
        "cancelled": bucket.cancelled,
        "tokens": bucket.tokens,
        "mean_ms": round(bucket.latency_sum / bucket.requests, 1) if bucket.requests else None,
        "p50_ms": _quantile(bucket, 0.50),
        "p95_ms": _quantile(bucket, 0.95),
        "max_ms": round(bucket.latency_max, 1) if bucket.requests else None,
    }


def _quantile(bucket: _Bucket, q: float) -> float | None:
    """The ``q`` quantile, interpolated inside the histogram bucket it falls in (capped by the max seen)."""
    if not bucket.requests:
        return None
    rank = q * bucket.requests
    seen = 0
    for i, n in enumerate(bucket.histogram):
        if n and seen + n >= rank:
            lower = LATENCY_BOUNDS_MS[i - 1] if i > 0 else 0.0
            upper = LATENCY_BOUNDS_MS[i] if i < len(LATENCY_BOUNDS_MS) else bucket.latency_max
            value = lower + (upper - lower) * max(0.0, rank - seen) / n
            return round(min(value, bucket.latency_max), 1)
        seen += n
    return round(bucket.latency_max, 1)
