"""The sliding-window counter's arithmetic, shared by the local and the Redis implementations.

Time is cut into fixed windows of ``window_s``; window ``idx`` holds ``cur``, the one before it
``prev``. At ``elapsed`` seconds into the current window, the sliding window of the last
``window_s`` seconds is estimated as ``prev * (1 - elapsed / window_s) + cur``.
"""

from __future__ import annotations

import math

from relaystack.state.base import Take

__all__ = ["decide", "estimate", "retry_after"]


def estimate(prev: float, cur: float, elapsed: float, window_s: float) -> float:
    return prev * max(0.0, 1.0 - elapsed / window_s) + cur


def retry_after(prev: float, cur: float, elapsed: float, window_s: float, amount: int, limit: int) -> float:
    """Seconds until ``amount`` more fits, if nothing else is added meanwhile."""
    if amount > limit:
        return math.inf
    room = limit - amount
    excess = estimate(prev, cur, elapsed, window_s) - room
    if excess <= 0:
        return 0.0
    if prev > 0:  # the previous window's share decays at prev / window_s per second
        wait = excess * window_s / prev
        if elapsed + wait <= window_s:
            return wait
    # after the boundary the current window becomes the previous one and decays in turn
    until_boundary = window_s - elapsed
    if cur <= room:
        return until_boundary
    return until_boundary + window_s * (1.0 - room / cur)


def decide(prev: float, cur: float, elapsed: float, window_s: float, amount: int, limit: int) -> Take:
    """The ``Take`` for the state *before* adding ``amount`` (the caller adds it when allowed)."""
    used = estimate(prev, cur, elapsed, window_s)
    if used + amount <= limit:
        return Take(True, used + amount, limit, 0.0)
    return Take(False, used, limit, retry_after(prev, cur, elapsed, window_s, amount, limit))
