"""Limit counters behind one narrow interface: in-process here, a SQLite file in
``counters_sqlite.py`` (several workers on one machine), Redis later (``relaystack.state``).

Windows slide: a window of ``seconds`` is 60 buckets of ``seconds / 60``, and an ask passes
when what the last 60 buckets hold is under the limit. For requests per minute that is exact
to the second: 200 requests at once against 50 per minute admit exactly 50, whatever the clock
says, where a fixed per-minute window would admit 100 across a minute boundary.

One ``admit`` is all-or-nothing: a request refused by its concurrency limit does not use up
its requests-per-minute, and the other way round.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

__all__ = ["Ask", "Counters", "InProcessCounters", "Outcome", "Window", "WindowState"]

BUCKETS = 60


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # e.g. "key-0123456789ab:rpm" (never a secret)
    limit: int
    seconds: int  # 60 (per minute) or 86400 (per day)
    kind: Literal["requests", "tokens"]  # requests: admit counts one; tokens: added at settle
    reason: str = ""  # for messages and metrics: rpm, tpm, rpd, quota
    about: str = ""  # for messages: "" (the key), "model 'x'", "client 10.0.0.1"
    bucket_seconds: float = field(init=False)
    limit_bytes: bytes = field(init=False)  # for the x-ratelimit-limit-* header
    # gateway/limit_headers.py's templates: the limit line and the remaining line's name, then
    # the reset line's name (made once per window, spliced with the numbers on every answer)
    lines_head: bytes = field(init=False)
    lines_reset: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bucket_seconds", self.seconds / BUCKETS)
        object.__setattr__(self, "limit_bytes", b"%d" % self.limit)
        unit = b"tokens" if self.kind == "tokens" else b"requests"
        object.__setattr__(self, "lines_head", b"x-ratelimit-limit-%b: %d\r\nx-ratelimit-remaining-%b: "
                           % (unit, self.limit, unit))
        object.__setattr__(self, "lines_reset", b"\r\nx-ratelimit-reset-%b: " % unit)


@dataclass(frozen=True, slots=True)
class Ask:
    windows: tuple[Window, ...] = ()
    slots: tuple[tuple[str, int], ...] = ()  # (name, max at once)
    # derived once: what a request holds until it settles
    slot_names: tuple[str, ...] = field(init=False)
    token_windows: tuple[Window, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slot_names", tuple(name for name, _ in self.slots))
        object.__setattr__(self, "token_windows", tuple(w for w in self.windows if w.kind == "tokens"))


class WindowState(NamedTuple):  # named tuples: made on every request, and cheap to make
    window: Window
    used: int  # after this admission
    reset_s: float  # until the oldest counted bucket leaves the window


# (window, used after this admission, seconds until its oldest counted bucket leaves)
Reported = tuple[Window, int, float]


class Outcome(NamedTuple):
    allowed: bool
    states: tuple[WindowState, ...] = ()
    # what refused it: a Window, or a slot's name
    refused_by: Window | str | None = None
    retry_after_s: float = 0.0


class Counters(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def admit(self, ask: Ask) -> Outcome:
        """Check every window and slot of ``ask``; when all pass, count one request in each
        requests window and take one of each slot, atomically."""

    async def settle(self, tokens: tuple[tuple[Window, int], ...], slots: tuple[str, ...]) -> None:
        """A request ended: add its tokens to its token windows, give its slots back."""


def bucket_of(window: Window, now: float) -> int:
    return int(now // window.bucket_seconds)


def reset_after(window: Window, oldest_bucket: int | None, now: float) -> float:
    """Seconds until the oldest counted bucket slides out (the whole window when none is counted)."""
    if oldest_bucket is None:
        return float(window.seconds)
    return max(0.0, (oldest_bucket + BUCKETS) * window.bucket_seconds - now)


class _Series:
    """One window's buckets in memory: (bucket, amount), oldest first, with their running sum."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0

    def used(self, current: int) -> int:
        floor = current - BUCKETS
        buckets = self.buckets
        while buckets and buckets[0][0] <= floor:
            self.total -= buckets.popleft()[1]
        return self.total

    def add(self, current: int, amount: int) -> None:
        if self.buckets and self.buckets[-1][0] == current:
            self.buckets[-1][1] += amount
        else:
            self.buckets.append([current, amount])
        self.total += amount

    def oldest(self) -> int | None:
        return self.buckets[0][0] if self.buckets else None


class InProcessCounters:
    """Exact within one process; nothing to start, nothing awaited in practice."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._series: dict[str, _Series] = {}
        self._slots: dict[str, int] = {}
        self._clock = clock or time.time

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def admit(self, ask: Ask) -> Outcome:
        return self.admit_now(ask, self._clock())

    def admit_clocked(self, ask: Ask) -> Outcome:
        """``admit`` without a coroutine."""
        return self.admit_now(ask, self._clock())

    def admit_fast(self, ask: Ask) -> tuple[Outcome | None, Reported | None, Reported | None]:
        """The gate's hot path: (None, tightest requests window, tightest tokens window) when
        admitted, each as (window, used, seconds to reset); (the refusal, None, None) otherwise.
        ``admit_now`` inlined: this runs on every request of a key with limits."""
        now = self._clock()
        checked: list[tuple[Window, _Series, int]] = []
        series_of = self._series
        for window in ask.windows:
            series = series_of.get(window.name)
            if series is None:
                series = series_of[window.name] = _Series()
            current = int(now // window.bucket_seconds)
            buckets = series.buckets
            floor = current - BUCKETS
            while buckets and buckets[0][0] <= floor:
                series.total -= buckets.popleft()[1]
            if series.total >= window.limit:
                return self.admit_now(ask, now), None, None  # the refusal, with every detail
            checked.append((window, series, current))
        slots = self._slots
        for name, limit in ask.slots:
            if slots.get(name, 0) >= limit:
                return self.admit_now(ask, now), None, None
        requests: Reported | None = None
        tokens: Reported | None = None
        for window, series, current in checked:
            buckets = series.buckets
            if window.kind == "requests":
                if buckets and buckets[-1][0] == current:
                    buckets[-1][1] += 1
                else:
                    buckets.append([current, 1])
                series.total += 1
                if requests is None or window.limit - series.total < requests[0].limit - requests[1]:
                    requests = (window, series.total, (buckets[0][0] + BUCKETS) * window.bucket_seconds - now)
            elif tokens is None or window.limit - series.total < tokens[0].limit - tokens[1]:
                oldest = buckets[0][0] if buckets else current
                tokens = (window, series.total, (oldest + BUCKETS) * window.bucket_seconds - now)
        for name, _limit in ask.slots:
            slots[name] = slots.get(name, 0) + 1
        return None, requests, tokens

    def settle_fast(self, token_windows: tuple[Window, ...], amount: int, slots: tuple[str, ...]) -> None:
        """The gate's hot path: ``settle`` for one request (``amount`` tokens in each of its
        token windows), without a coroutine and without building its pairs."""
        if amount > 0 and token_windows:
            now = self._clock()
            series_of = self._series
            for window in token_windows:
                series = series_of.get(window.name)
                if series is None:
                    series = series_of[window.name] = _Series()
                series.add(int(now // window.bucket_seconds), amount)
        held = self._slots
        for name in slots:
            left = held.get(name, 0) - 1
            if left > 0:
                held[name] = left
            else:
                held.pop(name, None)

    def admit_now(self, ask: Ask, now: float) -> Outcome:
        series_of = self._series
        checked: list[tuple[Window, _Series, int, int]] = []
        for window in ask.windows:
            series = series_of.get(window.name)
            if series is None:
                series = series_of[window.name] = _Series()
            current = int(now // window.bucket_seconds)
            used = series.used(current)
            if used >= window.limit:
                states = tuple(_state(w, s, u, now) for w, s, _, u in checked)
                return Outcome(False, states, window, max(1.0, reset_after(window, series.oldest(), now)))
            checked.append((window, series, current, used))
        slots = self._slots
        for name, limit in ask.slots:
            if slots.get(name, 0) >= limit:
                return Outcome(False, tuple(_state(w, s, u, now) for w, s, _, u in checked), name, 1.0)
        counted: list[WindowState] = []
        for window, series, current, used in checked:
            if window.kind == "requests":
                series.add(current, 1)
                used += 1
            counted.append(_state(window, series, used, now))
        for name, _limit in ask.slots:
            slots[name] = slots.get(name, 0) + 1
        return Outcome(True, tuple(counted))

    async def settle(self, tokens: tuple[tuple[Window, int], ...], slots: tuple[str, ...]) -> None:
        self.settle_now(tokens, slots, self._clock())

    def settle_now(self, tokens: tuple[tuple[Window, int], ...], slots: tuple[str, ...], now: float) -> None:
        for window, amount in tokens:
            if amount > 0:
                series = self._series.get(window.name)
                if series is None:
                    series = self._series[window.name] = _Series()
                series.add(bucket_of(window, now), amount)
        for name in slots:
            left = self._slots.get(name, 0) - 1
            if left > 0:
                self._slots[name] = left
            else:
                self._slots.pop(name, None)


def _state(window: Window, series: _Series, used: int, now: float) -> WindowState:
    oldest = series.buckets[0][0] if series.buckets else None
    return WindowState(window, used, reset_after(window, oldest, now))
