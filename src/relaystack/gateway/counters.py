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


class _Slot:
    """One concurrency slot's count in this process (kept once made: a lane holds it directly)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = 0


class InProcessCounters:
    """Exact within one process; nothing to start, nothing awaited in practice."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._series: dict[str, _Series] = {}
        self._slots: dict[str, _Slot] = {}
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

    def lane(self, ask: Ask) -> Lane:
        """``ask`` resolved to this process's own series and slots, once (the gate keeps it in its
        per-key plan): admitting and settling through it looks nothing up by name."""
        return Lane(self, ask)

    def series(self, name: str) -> _Series:
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = _Series()
        return series

    def slot(self, name: str) -> _Slot:
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = _Slot()
        return slot

    def held(self, name: str) -> int:
        """Requests holding the slot ``name`` now."""
        slot = self._slots.get(name)
        return slot.held if slot is not None else 0

    def admit_now(self, ask: Ask, now: float) -> Outcome:
        checked: list[tuple[Window, _Series, int, int]] = []
        for window in ask.windows:
            series = self.series(window.name)
            current = int(now // window.bucket_seconds)
            used = series.used(current)
            if used >= window.limit:
                states = tuple(_state(w, s, u, now) for w, s, _, u in checked)
                return Outcome(False, states, window, max(1.0, reset_after(window, series.oldest(), now)))
            checked.append((window, series, current, used))
        for name, limit in ask.slots:
            if self.held(name) >= limit:
                return Outcome(False, tuple(_state(w, s, u, now) for w, s, _, u in checked), name, 1.0)
        counted: list[WindowState] = []
        for window, series, current, used in checked:
            if window.kind == "requests":
                series.add(current, 1)
                used += 1
            counted.append(_state(window, series, used, now))
        for name, _limit in ask.slots:
            self.slot(name).held += 1
        return Outcome(True, tuple(counted))

    async def settle(self, tokens: tuple[tuple[Window, int], ...], slots: tuple[str, ...]) -> None:
        self.settle_now(tokens, slots, self._clock())

    def settle_now(self, tokens: tuple[tuple[Window, int], ...], slots: tuple[str, ...], now: float) -> None:
        for window, amount in tokens:
            if amount > 0:
                self.series(window.name).add(bucket_of(window, now), amount)
        for name in slots:
            slot = self._slots.get(name)
            if slot is not None and slot.held > 0:
                slot.held -= 1


class Lane:
    """One ask on the in-process counters, its windows and slots resolved to the counters' own
    objects (series and slots are never dropped, so the references stay good): the gate's hot
    path, one pass over them to admit and one to settle, no lookups by name, no coroutine."""

    __slots__ = ("ask", "clock", "counters", "slots", "tokens", "windows")

    def __init__(self, counters: InProcessCounters, ask: Ask) -> None:
        self.ask = ask
        self.counters = counters
        self.clock = counters._clock
        # (window, its series, counts requests: admit adds one, buckets of one second: a per-minute window)
        self.windows = tuple((w, counters.series(w.name), w.kind == "requests", w.bucket_seconds == 1.0)
                             for w in ask.windows)
        self.tokens = tuple((w, s, second) for w, s, requests, second in self.windows if not requests)
        self.slots = tuple((counters.slot(name), limit) for name, limit in ask.slots)

    def admit(self) -> tuple[Outcome | None, Reported | None, Reported | None]:
        """(None, tightest requests window, tightest tokens window) when admitted, each as
        (window, used, seconds to reset); (the refusal, None, None) otherwise (nothing counted)."""
        now = self.clock()
        # a per-minute window's bucket is the second: one int(), not a float floor division each
        second = int(now) if now >= 0 else int(now // 1.0)
        for window, series, _, per_second in self.windows:
            buckets = series.buckets
            floor = (second if per_second else int(now // window.bucket_seconds)) - BUCKETS
            while buckets and buckets[0][0] <= floor:
                series.total -= buckets.popleft()[1]
            if series.total >= window.limit:
                return self.counters.admit_now(self.ask, now), None, None  # the refusal, with every detail
        for slot, limit in self.slots:
            if slot.held >= limit:
                return self.counters.admit_now(self.ask, now), None, None
        requests: Reported | None = None
        tokens: Reported | None = None
        for window, series, counts_requests, per_second in self.windows:
            buckets = series.buckets
            if counts_requests:
                current = second if per_second else int(now // window.bucket_seconds)
                if buckets and buckets[-1][0] == current:
                    buckets[-1][1] += 1
                else:
                    buckets.append([current, 1])
                series.total += 1
                if requests is None or window.limit - series.total < requests[0].limit - requests[1]:
                    requests = (window, series.total, (buckets[0][0] + BUCKETS) * window.bucket_seconds - now)
            elif tokens is None or window.limit - series.total < tokens[0].limit - tokens[1]:
                oldest = buckets[0][0] if buckets else (second if per_second else int(now // window.bucket_seconds))
                tokens = (window, series.total, (oldest + BUCKETS) * window.bucket_seconds - now)
        for slot, _limit in self.slots:
            slot.held += 1
        return None, requests, tokens

    def settle(self, amount: int) -> None:
        """A request admitted through this lane ended: ``amount`` tokens into its token windows,
        its slots given back."""
        if amount > 0 and self.tokens:
            now = self.clock()
            for window, series, per_second in self.tokens:  # _Series.add, inline (no call per window)
                current = int(now) if per_second and now >= 0 else int(now // window.bucket_seconds)
                buckets = series.buckets
                if buckets and buckets[-1][0] == current:
                    buckets[-1][1] += amount
                else:
                    buckets.append([current, amount])
                series.total += amount
        for slot, _limit in self.slots:
            if slot.held > 0:
                slot.held -= 1


def _state(window: Window, series: _Series, used: int, now: float) -> WindowState:
    oldest = series.buckets[0][0] if series.buckets else None
    return WindowState(window, used, reset_after(window, oldest, now))
