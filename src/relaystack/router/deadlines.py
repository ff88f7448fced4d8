"""The router's time bounds, kept by one timer for all in-flight attempts and streams.

Every routed attempt has a bound (first byte, total, the request's deadline) that almost never
fires; a timer of its own (``loop.call_at`` + cancel) costs 2-3 µs per request under uvloop,
more than the rest of the routing. So bounds are entries in a set, and one timer sweeps them
every ``tick`` while any are registered: a bound that passed cancels its task, and the code
waiting in that task turns the cancellation into an ``upstream_timeout`` (``expired()`` tells
it apart from a client that went away). A bound fires at most one tick late; the router picks
the tick as a tenth of the shortest bound configured (5 ms .. 1 s).
"""

from __future__ import annotations

import asyncio

__all__ = ["AnswerBound", "Bound", "Deadlines", "StreamBound"]


class Bound:
    __slots__ = ("_task", "fired")

    def __init__(self) -> None:
        self._task = asyncio.current_task()
        self.fired: str | None = None  # why: "answer", "idle" or "end"

    def due(self, now: float) -> str | None:
        raise NotImplementedError

    def fire(self, why: str) -> None:
        self.fired = why
        if self._task is not None:
            self._task.cancel()

    def expired(self) -> bool:
        """After a CancelledError: True if this bound caused it (and the cancellation is taken back)."""
        return self.fired is not None and self._task is not None and self._task.uncancel() == 0


class AnswerBound(Bound):
    """An attempt must answer (JSON, or a stream's first event) by ``when`` (loop time)."""

    __slots__ = ("when",)

    def __init__(self, when: float) -> None:
        super().__init__()
        self.when = when

    def due(self, now: float) -> str | None:
        return "answer" if now >= self.when else None


class StreamBound(Bound):
    """A committed stream: no wait on the upstream longer than ``idle_s``, nothing past ``end_at``.
    Only time spent waiting on the upstream counts (``waiting_since``): a client slow to read is
    not an idle upstream."""

    __slots__ = ("end_at", "idle_s", "waiting_since")

    def __init__(self, idle_s: float | None, end_at: float | None) -> None:
        super().__init__()
        self.idle_s = idle_s
        self.end_at = end_at
        self.waiting_since: float | None = None

    def due(self, now: float) -> str | None:
        if self.waiting_since is None:
            return None
        if self.end_at is not None and now >= self.end_at:
            return "end"
        if self.idle_s is not None and now - self.waiting_since >= self.idle_s:
            return "idle"
        return None


class Deadlines:
    __slots__ = ("_bounds", "_handle", "_loop", "tick")

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self._bounds: set[Bound] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, bound: Bound) -> None:
        self._bounds.add(bound)
        if self._handle is None or (self._loop is not None and self._loop.is_closed()):
            loop = self._loop = asyncio.get_running_loop()
            self._handle = loop.call_later(self.tick, self._sweep)

    def discard(self, bound: Bound) -> None:
        self._bounds.discard(bound)

    def _sweep(self) -> None:
        self._handle = None
        if not self._bounds or self._loop is None:
            return
        now = self._loop.time()
        for bound, why in [(b, why) for b in self._bounds if (why := b.due(now)) is not None]:
            self._bounds.discard(bound)
            bound.fire(why)
        if self._bounds and not self._loop.is_closed():
            self._handle = self._loop.call_later(self.tick, self._sweep)
