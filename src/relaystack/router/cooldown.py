"""Deployment health: a circuit breaker per deployment, behind a small protocol.

closed (healthy) --K failures within window_s--> open (cooling down until T)
open --T passes--> half-open: the next request (one, across all concurrent ones) is the probe
half-open --probe succeeds--> closed;  --probe fails--> open for another cooldown_s

So with a deployment down, requests skip it: at most one failed attempt per cooldown window
(the probe), not one per request. ``CooldownState`` is the protocol the router uses; this
module has the in-process implementation. A shared one (Redis, so several workers and hosts
agree) implements the same five methods. Times are wall-clock seconds (``time.time()``) so
"cooling down until T" means the same thing in every process.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["CooldownRule", "CooldownState", "DeploymentHealth", "InProcessCooldowns", "Verdict"]

# admit: go ahead; probe: go ahead, you are the half-open probe; skip: cooling down (or probed)
Verdict = Literal["admit", "probe", "skip"]


@dataclass(frozen=True, slots=True)
class CooldownRule:
    failures: int
    window_s: float
    cooldown_s: float


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    state: Literal["healthy", "cooling_down", "half_open"]
    until: float | None = None  # epoch seconds the cooldown ends (cooling_down)
    recent_failures: int = 0


class CooldownState(Protocol):
    async def admit(self, key: str, lease_s: float) -> tuple[Verdict, float]:
        """May a request try deployment ``key`` now? ``(verdict, until)``: ``until`` is when a
        skipped deployment's cooldown ends. A "probe" verdict is held for ``lease_s`` at most
        (a probe that never reports back must not block the deployment for ever)."""

    async def failed(self, key: str, rule: CooldownRule, *, probe: bool, hold_s: float | None = None) -> float | None:
        """Count a failure; returns the cooldown's end if this failure opened one. ``hold_s``:
        open at once for that long (the upstream's own Retry-After, past what the router waits)."""

    async def succeeded(self, key: str, *, probe: bool) -> None:
        """An answer came: a probe's success (or any success once the cooldown ended) closes it.
        The router reports probes only: a success on a closed deployment changes nothing."""

    async def abandoned(self, key: str) -> None:
        """A probe ended without a verdict (the client went away): let the next request probe."""

    async def snapshot(self, keys: Iterable[str]) -> dict[str, DeploymentHealth]: ...


class _Slot:
    __slots__ = ("failures", "probe_until", "until")

    def __init__(self, size: int) -> None:
        self.failures: deque[float] = deque(maxlen=size)
        self.until = 0.0  # 0: closed
        self.probe_until = 0.0


class InProcessCooldowns:
    """``CooldownState`` for one process. Every method runs without awaiting, so it is atomic
    with respect to the other requests on the event loop."""

    def __init__(self, clock: Callable[[], float] = time.time, on_open: Callable[[str], None] | None = None) -> None:
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._on_open = on_open

    async def admit(self, key: str, lease_s: float) -> tuple[Verdict, float]:
        slot = self._slots.get(key)
        if slot is None or not slot.until:
            return "admit", 0.0
        now = self._clock()
        if now < slot.until:
            return "skip", slot.until
        if now < slot.probe_until:
            return "skip", slot.probe_until  # another request is probing it
        slot.probe_until = now + lease_s
        return "probe", 0.0

    async def failed(self, key: str, rule: CooldownRule, *, probe: bool, hold_s: float | None = None) -> float | None:
        now = self._clock()
        slot = self._slots.get(key)
        if slot is None or slot.failures.maxlen != rule.failures:
            slot = self._slots[key] = _Slot(rule.failures)
        if slot.until and now < slot.until and not probe:
            return None  # already cooling: a request that was in flight before does not extend it
        if probe or slot.until or hold_s is not None:
            # a failed probe (or a failure once the cooldown ended) opens it again at once
            return self._open(key, slot, now + (hold_s if hold_s is not None else rule.cooldown_s))
        slot.failures.append(now)
        if len(slot.failures) >= rule.failures and slot.failures[0] >= now - rule.window_s:
            return self._open(key, slot, now + rule.cooldown_s)
        return None

    def _open(self, key: str, slot: _Slot, until: float) -> float:
        slot.until = until
        slot.probe_until = 0.0
        slot.failures.clear()
        if self._on_open is not None:
            self._on_open(key)
        return until

    async def succeeded(self, key: str, *, probe: bool) -> None:
        slot = self._slots.get(key)
        if slot is None or not slot.until:
            return
        if probe or self._clock() >= slot.until:
            slot.until = 0.0
            slot.probe_until = 0.0
            slot.failures.clear()

    async def abandoned(self, key: str) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            slot.probe_until = 0.0

    async def snapshot(self, keys: Iterable[str]) -> dict[str, DeploymentHealth]:
        now = self._clock()
        out: dict[str, DeploymentHealth] = {}
        for key in keys:
            slot = self._slots.get(key)
            if slot is None or not slot.until:
                out[key] = DeploymentHealth("healthy", None, 0 if slot is None else len(slot.failures))
            elif now < slot.until:
                out[key] = DeploymentHealth("cooling_down", slot.until, 0)
            else:
                out[key] = DeploymentHealth("half_open", slot.until, 0)
        return out
