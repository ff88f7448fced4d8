"""The shared-state interface: what several relaystack instances must agree on, fast.

Three primitives, each with an in-process (``local.LocalState``) and a Redis
(``redis.RedisState``) implementation that behave the same:

- **windowed counters with limits** (``take``, ``add``, ``usage``): requests or tokens per
  window (RPM, TPM). A *sliding-window counter*: the current fixed window's count plus the
  previous window's count weighted by how much of it still overlaps the sliding window. It
  never admits a burst of twice the limit across a window boundary, as a fixed window does,
  and needs two numbers per key instead of a log of timestamps. ``take`` checks and adds in one
  atomic step (a Lua script on Redis, with Redis's clock), so the limit is exact under
  concurrency across instances: 200 concurrent takes against a limit of 50 admit exactly 50.
- **TTL'd key-value** (``set``, ``get``, ``delete``): cooldown and circuit state, short-lived
  caches. ``set(..., only_if_absent=True)`` is an atomic claim (the first instance wins).
- **invalidation broadcast** (``publish``, ``subscribe``): "key X was revoked", "models
  changed". Every subscriber, in every instance (the publisher's own included), gets each
  message, typically well under a second later. Delivery is at most once: after a connection
  loss the callback receives ``None``, meaning "messages may have been missed: drop whatever
  you cached", so a subscriber never keeps a revoked key just because Redis restarted.

Keys and channels are plain strings naming what they count or hold (``"rpm:key_abc"``,
``"cooldown:together/dep-1"``, ``"keys"``); implementations add their own prefix. A counter key
is used with one window length only.

Errors: an operation that cannot reach Redis raises ``StateUnavailableError`` (503,
``state_unavailable``); whether a limit then fails open or closed is the caller's decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from relaystack.errors import ServiceUnavailableError

__all__ = ["MessageCallback", "SharedState", "StateUnavailableError", "Take"]

# called with each message's bytes, or None after a gap (messages may have been lost)
MessageCallback = Callable[[bytes | None], None]


class StateUnavailableError(ServiceUnavailableError):
    """The shared state (Redis) cannot be reached right now."""

    default_code = "state_unavailable"


@dataclass(frozen=True, slots=True)
class Take:
    """The outcome of ``take``: admitted or not, the usage it saw, and when to retry."""

    allowed: bool
    # the sliding-window usage after this take (allowed) or as it stands (refused)
    used: float
    limit: int
    # seconds until ``amount`` would fit (0 when allowed; ``math.inf`` when amount > limit)
    retry_after_s: float = 0.0

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.limit - self.used))


class SharedState(Protocol):
    backend: str  # "local" or "redis"

    async def start(self) -> None:
        """Connect (Redis: waits a few seconds for it, then raises ``ConfigError``)."""

    async def stop(self) -> None:
        """Disconnect; subscriptions end."""

    def health(self) -> dict[str, Any]:
        """``{"backend": ..., "status": "OK" | "unavailable", ...}``; no I/O."""

    # -- windowed counters ----------------------------------------------------------------
    async def take(self, key: str, amount: int, *, limit: int, window_s: float) -> Take:
        """Atomically: if the window's usage plus ``amount`` fits in ``limit``, add ``amount``."""

    async def add(self, key: str, amount: int, *, window_s: float) -> float:
        """Add unconditionally (tokens known only after the answer); returns the new usage."""

    async def usage(self, key: str, *, window_s: float) -> float:
        """The sliding-window usage now."""

    # -- TTL'd key-value ----------------------------------------------------------------
    async def set(self, key: str, value: bytes, *, ttl_s: float, only_if_absent: bool = False) -> bool:
        """Store ``value`` for ``ttl_s`` seconds; False if ``only_if_absent`` and the key exists."""

    async def get(self, key: str) -> bytes | None:
        """The value, or None if absent or expired."""

    async def delete(self, key: str) -> bool:
        """True if the key existed."""

    # -- invalidation broadcast ---------------------------------------------------------
    async def publish(self, channel: str, message: bytes) -> None:
        """Send ``message`` to every subscriber of ``channel`` in every instance."""

    def subscribe(self, channel: str, callback: MessageCallback) -> Callable[[], None]:
        """Call ``callback`` (on the event loop) for each message; returns the unsubscribe function."""
