"""Shared fast state: windowed counters, TTL'd values and an invalidation broadcast.

``SharedState`` (``base.py``) is the interface; ``LocalState`` (in-process) and ``RedisState``
(Redis) implement it; ``open_state`` picks one from the config (``factory.py``).
"""

from relaystack.state.base import MessageCallback, SharedState, StateUnavailableError, Take
from relaystack.state.factory import has_cooldowns, needs_of, open_state
from relaystack.state.local import LocalState

__all__ = [
    "LocalState", "MessageCallback", "SharedState", "StateUnavailableError", "Take", "has_cooldowns", "needs_of",
    "open_state",
]
