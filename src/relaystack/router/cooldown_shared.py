"""``CooldownState`` on the shared state (Redis): every instance skips a deployment one cooled.

The circuit is the one of ``cooldown.py`` (closed -> open for ``cooldown_s`` -> half-open, one
probe), shared:

- **the answer stays local.** Each instance keeps a view of each deployment (cooling until T,
  or closed). ``admit`` reads that view: a healthy deployment costs no call to Redis. The view is
  kept in step by a broadcast (channel ``cooldowns``: ``open <key> <until>`` / ``close <key>``)
  that every instance publishes when it opens or closes a cooldown, and re-read from Redis the
  first time a deployment is seen and every ``recheck_s`` after (a broadcast lost in a Redis
  restart, an instance started while a deployment was cooling).
- **failures are counted together** in a windowed counter (``fails:<key>:<generation>``,
  the generation being the end of the deployment's last cooldown, so a closed circuit starts
  counting from zero), so K failures spread over instances open it as K on one would.
- **one probe across instances**: when a cooldown ends, the instance whose ``SET NX`` on
  ``probe:<key>`` wins probes; the others skip it for a second at a time until it reports.
- **the record** ``cooldown:<key>`` holds the end of the cooldown; it lives until a probe closes
  it (or ``_GRACE_S`` after its end, if the deployment is never tried again).

When Redis cannot be reached, each instance goes on alone (its own failure count, its own probe)
and says so once in the log: routing around a failing deployment must not fail because the
shared state did.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from relaystack.router.cooldown import CooldownRule, DeploymentHealth, Verdict
from relaystack.state.base import SharedState, StateUnavailableError

__all__ = ["CHANNEL", "SharedCooldowns"]

log = logging.getLogger("relaystack.router")

_T = TypeVar("_T")

CHANNEL = "cooldowns"
_GRACE_S = 600.0
_OTHERS_PROBE_S = 1.0  # while another instance probes, look again after this long


class _View:
    __slots__ = ("checked", "failures", "generation", "probe_until", "until")

    def __init__(self) -> None:
        self.until = 0.0  # 0: closed
        self.probe_until = 0.0
        self.generation = 0.0  # the end of the last cooldown: names the failure counter
        self.checked = float("-inf")  # when it was last read from the shared state
        self.failures: deque[float] = deque()  # counted here only while the shared state is away


class SharedCooldowns:
    def __init__(self, state: SharedState, clock: Callable[[], float] = time.time, recheck_s: float = 5.0) -> None:
        self._state = state
        self._clock = clock
        self._recheck_s = recheck_s
        self._views: dict[str, _View] = {}
        self._alone = False  # the shared state is unreachable: deciding alone (logged once)
        state.subscribe(CHANNEL, self._heard)

    # -- CooldownState --------------------------------------------------------------------
    async def admit(self, key: str, lease_s: float) -> tuple[Verdict, float]:
        view = await self._view(key)
        if not view.until:
            return "admit", 0.0
        now = self._clock()
        if now < view.until:
            return "skip", view.until
        if now < view.probe_until:
            return "skip", view.probe_until
        won = await self._shared(self._state.set(f"probe:{key}", b"1", ttl_s=lease_s, only_if_absent=True), True)
        view.probe_until = now + (lease_s if won else _OTHERS_PROBE_S)
        return ("probe", 0.0) if won else ("skip", view.probe_until)

    async def failed(self, key: str, rule: CooldownRule, *, probe: bool, hold_s: float | None = None) -> float | None:
        view = await self._view(key)
        now = self._clock()
        if view.until and now < view.until and not probe:
            return None  # already cooling: a request that was in flight before does not extend it
        if probe or view.until or hold_s is not None:
            return await self._open(key, view, now + (hold_s if hold_s is not None else rule.cooldown_s), replace=True)
        counted = await self._shared(self._state.add(f"fails:{key}:{view.generation!r}", 1, window_s=rule.window_s),
                                     None)
        if counted is not None:
            reached = counted >= rule.failures - 1e-9
        else:
            view.failures.append(now)
            while view.failures and view.failures[0] < now - rule.window_s:
                view.failures.popleft()
            reached = len(view.failures) >= rule.failures
        return await self._open(key, view, now + rule.cooldown_s, replace=False) if reached else None

    async def succeeded(self, key: str, *, probe: bool) -> None:
        view = self._views.get(key)
        if view is None or not view.until or not (probe or self._clock() >= view.until):
            return
        _close(view)
        await self._shared(self._state.delete(f"cooldown:{key}"), False)
        await self._shared(self._state.delete(f"probe:{key}"), False)
        await self._shared(self._state.publish(CHANNEL, b"close " + key.encode()), None)

    async def abandoned(self, key: str) -> None:
        view = self._views.get(key)
        if view is not None and view.probe_until:
            view.probe_until = 0.0
            await self._shared(self._state.delete(f"probe:{key}"), False)

    async def snapshot(self, keys: Iterable[str]) -> dict[str, DeploymentHealth]:
        out: dict[str, DeploymentHealth] = {}
        for key in keys:
            view = await self._view(key)
            now = self._clock()
            if not view.until:
                out[key] = DeploymentHealth("healthy", None, len(view.failures))
            elif now < view.until:
                out[key] = DeploymentHealth("cooling_down", view.until, 0)
            else:
                out[key] = DeploymentHealth("half_open", view.until, 0)
        return out

    # -- the shared side ------------------------------------------------------------------
    async def _view(self, key: str) -> _View:
        """This instance's view of ``key``, read from the shared state when unseen or stale."""
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = _View()
        now = self._clock()
        if now - view.checked < self._recheck_s:
            return view
        view.checked = now
        stored = await self._shared(self._state.get(f"cooldown:{key}"), b"")
        if stored is None:  # no shared cooldown (a probe closed it, or it never opened)
            if view.until:
                _close(view)
        elif stored:
            _opened(view, float(stored))
        return view

    async def _open(self, key: str, view: _View, until: float, *, replace: bool) -> float | None:
        """Open (``replace``: or re-open) the cooldown until ``until``; None when another instance
        opened it first (its cooldown is taken instead of extended)."""
        ttl = until - self._clock() + _GRACE_S
        stored = await self._shared(
            self._state.set(f"cooldown:{key}", repr(until).encode(), ttl_s=ttl, only_if_absent=not replace), True)
        if not stored:
            view.checked = float("-inf")
            await self._view(key)
            return None
        _opened(view, until)
        if replace:  # a failed probe: the next cooldown's end may be probed again
            await self._shared(self._state.delete(f"probe:{key}"), False)
        await self._shared(self._state.publish(CHANNEL, b"open %s %r" % (key.encode(), until)), None)
        return until

    def _heard(self, message: bytes | None) -> None:
        if message is None:  # messages may have been missed: re-read every view on its next use
            for view in self._views.values():
                view.checked = float("-inf")
            return
        what, _, rest = message.decode().partition(" ")
        if what == "close":
            closed = self._views.get(rest)
            if closed is not None:
                _close(closed)
                closed.checked = self._clock()
        elif what == "open":
            key, _, until = rest.rpartition(" ")
            view = self._views.setdefault(key, _View())
            _opened(view, float(until))
            view.checked = self._clock()

    async def _shared(self, operation: Awaitable[_T], fallback: _T) -> _T:
        """Run one shared-state operation; while the shared state is away, ``fallback`` (alone)."""
        try:
            result = await operation
        except StateUnavailableError:
            if not self._alone:
                self._alone = True
                log.warning("Deployment cooldowns: the shared state is unreachable; this instance decides "
                            "alone until it is back")
            return fallback
        if self._alone:
            self._alone = False
            log.warning("Deployment cooldowns: the shared state is back; cooldowns are shared again")
        return result


def _opened(view: _View, until: float) -> None:
    if view.until != until:
        view.until = until
        view.probe_until = 0.0
    view.generation = until
    view.failures.clear()


def _close(view: _View) -> None:
    view.until = 0.0
    view.probe_until = 0.0
    view.failures.clear()
