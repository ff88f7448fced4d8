"""Prometheus metrics: ``GET /metrics``, fed through the ``relaystack.telemetry`` hooks.

With ``--workers N`` a request lands on any worker, so each worker's own numbers would be a
random slice. prometheus_client's multiprocess mode is used then: every worker writes its
values to memory-mapped files in one directory (``PROMETHEUS_MULTIPROC_DIR``, made by
``relaystack run`` before the workers start) and whichever worker answers ``/metrics`` sums
them all. Gauges of the local models count live workers only. With one worker the values stay
in memory: no files.

Hot-path cost: a request adds to plain per-label-set tallies of its process (no locks, no
memory-mapped writes); they are moved into the Prometheus values at each scrape and every
second, so a scrape answered by another worker lags by at most a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from relaystack.context import RequestContext
from relaystack.gateway.usage import tokens_of
from relaystack.telemetry import Telemetry

__all__ = ["CONTENT_TYPE", "PrometheusTelemetry", "multiprocess_dir", "prepare_multiprocess"]

log = logging.getLogger("relaystack.gateway")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
# distinct model label values kept; beyond it "other" (a client could otherwise grow the series)
_MAX_MODELS = 500
_FLUSH_S = 1.0
_LOCAL_STATES = ("not_loaded", "loading", "ready", "failed")
_TOKEN_KINDS = ("prompt", "completion", "cached")

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: half the exposition, nothing a dashboard reads


def prepare_multiprocess(workers: int) -> None:
    """Called by ``relaystack run`` before any worker starts: several workers share one directory."""
    if workers <= 1 or os.environ.get(_ENV):
        return
    path = tempfile.mkdtemp(prefix="relaystack-metrics-")
    os.environ[_ENV] = path
    import atexit

    atexit.register(shutil.rmtree, path, True)


def multiprocess_dir() -> str | None:
    return os.environ.get(_ENV) or None


class PrometheusTelemetry(Telemetry):
    enabled = True

    def __init__(self, local_providers: Iterable[Any] = (), router_stats: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._multiprocess = multiprocess_dir()
        self._local = list(local_providers)
        self._refresh_task: asyncio.Task[None] | None = None
        self._models: set[str] = set()
        # (route, ctx.model, ctx.provider_id, ctx.status) -> that label set's tally since the last flush
        self._tallies: dict[tuple[str, str | None, str | None, int | None], _Tally] = {}
        # (ctx.model, ctx.provider_id) -> the streams' times to first token since the last flush
        self._ttft: dict[tuple[str | None, str | None], _Tally] = {}
        # the router counts its own events (router/stats.py): read at each flush, as deltas
        self._router_stats = router_stats
        self._router_seen: dict[tuple[str, str, str], int] = {}
        self._bounds = _LATENCY_BUCKETS
        self._build(self.registry)

    def _build(self, r: CollectorRegistry) -> None:
        self.requests = Counter("relaystack_requests", "Requests answered, by route, model, provider and status.",
                                ["route", "model", "provider", "status"], registry=r)
        self.latency = Histogram("relaystack_request_duration_seconds", "Time from request to last byte.",
                                 ["route", "model", "provider"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("relaystack_time_to_first_token_seconds", "Time from request to a stream's first block.",
                              ["model", "provider"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("relaystack_tokens", "Tokens the upstreams reported (prompt, completion, cached).",
                              ["model", "provider", "kind"], registry=r)
        self.upstream_errors = Counter("relaystack_upstream_errors", "Upstream errors and unreachable upstreams.",
                                       ["provider", "status"], registry=r)
        self.stream_failures = Counter("relaystack_stream_failures", "Streams that ended with an error event.",
                                       ["provider", "reason"], registry=r)
        self.store_failures = Counter("relaystack_store_failures", "Store writes or reads that failed.",
                                      ["operation"], registry=r)
        self.rate_limits = Counter("relaystack_rate_limited", "Requests refused by a key's limits or budget.",
                                   ["reason"], registry=r)
        self.auth_failures = Counter("relaystack_auth_failures", "Requests refused by authentication (401/403).",
                                     ["reason"], registry=r)
        self.retries = Counter("relaystack_retries", "Router retries.", ["provider", "model", "reason"], registry=r)
        self.fallbacks = Counter("relaystack_fallbacks", "Router fallbacks to another deployment.",
                                 ["model", "from_provider", "to_provider"], registry=r)
        self.cooldowns = Counter("relaystack_cooldowns", "Deployments taken out of rotation.",
                                 ["provider", "model"], registry=r)
        self.router_events = Counter(
            "relaystack_router_events", "The router's attempts, failures, retries, fallbacks, cooldowns, probes, "
            "skips and exhausted requests, by model and deployment.", ["model", "deployment", "event"], registry=r)
        self.local_queue = Gauge("relaystack_local_model_queue_depth", "Requests queued or running on a local model.",
                                 ["model"], registry=r, multiprocess_mode="livesum")
        self.local_state = Gauge("relaystack_local_model_state", "Workers whose local model is in this state.",
                                 ["model", "state"], registry=r, multiprocess_mode="livesum")

    # -- hooks (telemetry.Telemetry) ------------------------------------------------------------
    def request_done(self, route: str, ctx: RequestContext) -> None:
        # the hot path: plain additions to this process's tallies, no locks; flush() moves them
        # into the Prometheus values (at each scrape, and every second for the other workers).
        # Tallies are found by the request's raw fields; their labels are worked out once a second.
        key = (route, ctx.model, ctx.provider_id, ctx.status)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally(len(self._bounds), self._labels(route, ctx))
        elapsed = time.monotonic() - ctx.started
        tally.count += 1
        tally.total += elapsed
        tally.buckets[bisect_left(self._bounds, elapsed)] += 1
        if ctx.usage:
            tokens = getattr(ctx.principal, "tokens", None) or tokens_of(ctx.usage)
            tally.prompt += tokens.prompt
            tally.completion += tokens.completion
            tally.cached += tokens.cached

    def _labels(self, route: str, ctx: RequestContext) -> tuple[str, str, str, str]:
        status = str(ctx.status) if ctx.status is not None else "499"  # nginx's "client closed request"
        return route, self._model_label(ctx), ctx.provider_id or "", status

    def flush(self) -> None:
        """Add the tallies to the Prometheus values (the histogram's own sum and buckets)."""
        self._flush_router()
        tallies, self._tallies = self._tallies, {}
        for tally in tallies.values():
            route, model, provider, status = tally.labels
            self.requests.labels(route, model, provider, status).inc(tally.count)
            _add_to_histogram(self.latency.labels(route, model, provider), tally)
            if tally.prompt or tally.completion or tally.cached:
                for kind, amount in zip(_TOKEN_KINDS, (tally.prompt, tally.completion, tally.cached), strict=True):
                    if amount:
                        self.tokens.labels(model, provider, kind).inc(amount)
        ttft, self._ttft = self._ttft, {}
        for tally in ttft.values():
            _add_to_histogram(self.ttft.labels(*tally.labels), tally)

    def _flush_router(self) -> None:
        if self._router_stats is None:
            return
        for (model, deployment, event), count in self._router_stats.counts.items():
            seen = self._router_seen.get((model, deployment, event), 0)
            if count > seen:
                self.router_events.labels(self._bounded(model), deployment, event).inc(count - seen)
                self._router_seen[(model, deployment, event)] = count

    def route_done(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, "", "", str(status)).inc()
        self.latency.labels(route, "", "").observe(seconds)

    def first_token(self, ctx: RequestContext, seconds: float) -> None:
        # tallied like request_done: a histogram's labels() and observe() take locks (~6 µs a stream)
        key = (ctx.model, ctx.provider_id)
        tally = self._ttft.get(key)
        if tally is None:
            tally = self._ttft[key] = _Tally(len(self._bounds), (self._model_label(ctx), ctx.provider_id or ""))
        tally.count += 1
        tally.total += seconds
        tally.buckets[bisect_left(self._bounds, seconds)] += 1

    def upstream_error(self, provider: str, status: int) -> None:
        self.upstream_errors.labels(provider, str(status)).inc()

    def stream_failure(self, provider: str, reason: str) -> None:
        self.stream_failures.labels(provider, reason).inc()

    def store_failure(self, operation: str) -> None:
        self.store_failures.labels(operation).inc()

    def rate_limited(self, reason: str) -> None:
        self.rate_limits.labels(reason).inc()

    def auth_failure(self, reason: str) -> None:
        self.auth_failures.labels(reason).inc()

    def retry(self, provider: str, model: str, reason: str) -> None:
        self.retries.labels(provider, self._bounded(model), reason).inc()

    def fallback(self, model: str, from_provider: str, to_provider: str) -> None:
        self.fallbacks.labels(self._bounded(model), from_provider, to_provider).inc()

    def cooldown(self, provider: str, model: str, seconds: float) -> None:
        self.cooldowns.labels(provider, self._bounded(model)).inc()

    def _model_label(self, ctx: RequestContext) -> str:
        # only ids that resolved to a provider: a 404's model is the client's free text
        if ctx.provider_id is None or not ctx.model:
            return ""
        return self._bounded(ctx.model)

    def _bounded(self, model: str) -> str:
        if model in self._models:
            return model
        if len(self._models) >= _MAX_MODELS:
            return "other"
        self._models.add(model)
        return model

    # -- the admin side ---------------------------------------------------------------------------
    def render(self) -> bytes:
        """The exposition text: this process's values, or every worker's when there are several."""
        self.flush()
        self.refresh_local_models()
        if self._multiprocess is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=self._multiprocess)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def refresh_local_models(self) -> None:
        for provider in self._local:
            try:
                worker = provider.worker
                model = str(provider.model_id)
                state = str(worker.state)
                depth = int(getattr(worker, "queue_depth", 0))
            except Exception:  # a provider without a worker: nothing to report
                continue
            state = state.split(":", 1)[0]  # "failed: <reason>" -> failed (the reason is in /v1/health)
            self.local_queue.labels(model).set(depth)
            for known in _LOCAL_STATES:
                self.local_state.labels(model, known).set(1 if known == state else 0)

    async def start(self) -> None:
        self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        """Every second: the tallies into the shared values (other workers may answer the scrape)
        and the local models' state."""
        while True:
            await asyncio.sleep(_FLUSH_S)
            try:
                self.flush()
                self.refresh_local_models()
            except Exception:  # a metrics bug must not stop the loop
                log.exception("metrics: flush failed")

    async def stop(self) -> None:
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh_task
        self.flush()
        if self._multiprocess is not None:
            with contextlib.suppress(OSError):
                mark_process_dead(os.getpid(), self._multiprocess)  # type: ignore[no-untyped-call]


class _Tally:
    """One label set's requests since the last flush."""

    __slots__ = ("buckets", "cached", "completion", "count", "labels", "prompt", "total")

    def __init__(self, bounds: int, labels: tuple[str, ...]) -> None:
        self.labels = labels  # route, model, provider, status (a time to first token: model, provider)
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * (bounds + 1)  # the last one is +Inf
        self.prompt = self.completion = self.cached = 0


def _add_to_histogram(child: Any, tally: _Tally) -> None:
    """Many observations at once: prometheus_client has no bulk observe, so its child's own
    values are added to (``_sum``, per-bucket ``_buckets``; stable since 0.4, pinned >= 0.20)."""
    child._sum.inc(tally.total)
    for value, count in zip(child._buckets, tally.buckets, strict=True):
        if count:
            value.inc(count)
