"""``SharedState`` in process memory: one instance, one worker process (the default).

Exact within the process: the event loop runs each operation to completion without awaiting
in between, so a take is atomic. With several processes (``--workers N``, several instances)
each would count alone; ``relaystack.state.factory`` refuses that combination where a feature
needs shared state (see its docstring).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from relaystack.state.base import MessageCallback, Take
from relaystack.state.window import decide, estimate

__all__ = ["LocalState"]

_SWEEP_EVERY = 4096  # operations between sweeps of expired counters and values


class LocalState:
    backend = "local"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counters: dict[str, tuple[int, float, float, float]] = {}  # key -> (idx, prev, cur, window)
        self._values: dict[str, tuple[bytes, float]] = {}  # key -> (value, expires at, clock time)
        self._subscribers: dict[str, list[MessageCallback]] = {}
        self._ops = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._subscribers.clear()

    def health(self) -> dict[str, Any]:
        return {"backend": "local", "status": "OK"}

    # -- windowed counters ----------------------------------------------------------------
    def _window(self, key: str, window_s: float) -> tuple[int, float, float, float]:
        """(idx, prev, cur, elapsed) for now, rolled forward past any ended windows."""
        now = self._clock()
        idx = int(now // window_s)
        stored = self._counters.get(key)
        prev = cur = 0.0
        if stored is not None:
            last_idx, last_prev, last_cur, _ = stored
            if last_idx == idx:
                prev, cur = last_prev, last_cur
            elif last_idx == idx - 1:
                prev = last_cur
        return idx, prev, cur, now - idx * window_s

    async def take(self, key: str, amount: int, *, limit: int, window_s: float) -> Take:
        idx, prev, cur, elapsed = self._window(key, window_s)
        outcome = decide(prev, cur, elapsed, window_s, amount, limit)
        if outcome.allowed:
            self._counters[key] = (idx, prev, cur + amount, window_s)
            self._maybe_sweep()
        return outcome

    async def add(self, key: str, amount: int, *, window_s: float) -> float:
        idx, prev, cur, elapsed = self._window(key, window_s)
        self._counters[key] = (idx, prev, cur + amount, window_s)
        self._maybe_sweep()
        return estimate(prev, cur + amount, elapsed, window_s)

    async def usage(self, key: str, *, window_s: float) -> float:
        _idx, prev, cur, elapsed = self._window(key, window_s)
        return estimate(prev, cur, elapsed, window_s)

    # -- TTL'd key-value ----------------------------------------------------------------
    async def set(self, key: str, value: bytes, *, ttl_s: float, only_if_absent: bool = False) -> bool:
        if only_if_absent and await self.get(key) is not None:
            return False
        self._values[key] = (bytes(value), self._clock() + ttl_s)
        self._maybe_sweep()
        return True

    async def get(self, key: str) -> bytes | None:
        found = self._values.get(key)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._values[key]
            return None
        return found[0]

    async def delete(self, key: str) -> bool:
        present = await self.get(key) is not None
        self._values.pop(key, None)
        return present

    def _maybe_sweep(self) -> None:
        self._ops += 1
        if self._ops % _SWEEP_EVERY:
            return
        now = self._clock()
        self._values = {k: v for k, v in self._values.items() if v[1] > now}
        self._counters = {k: c for k, c in self._counters.items() if int(now // c[3]) - c[0] <= 1}

    # -- invalidation broadcast ---------------------------------------------------------
    async def publish(self, channel: str, message: bytes) -> None:
        loop = asyncio.get_running_loop()
        for callback in list(self._subscribers.get(channel, ())):
            loop.call_soon(callback, bytes(message))

    def subscribe(self, channel: str, callback: MessageCallback) -> Callable[[], None]:
        self._subscribers.setdefault(channel, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(channel, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe
