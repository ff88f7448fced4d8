"""Polling for something another process or a background task will make true (no timing asserts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["clear_of_window_edge", "eventually"]


async def eventually(predicate: Callable[[], bool], timeout_s: float, every_s: float = 0.02) -> bool:
    """True as soon as ``predicate()`` is; False once ``timeout_s`` passed without it."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every_s)
    return True


def clear_of_window_edge(window_s: float = 60.0, margin_s: float = 5.0) -> None:
    """Wait, if need be, until a fixed window of ``window_s`` has at least ``margin_s`` to run.

    The rate limits' sliding window is estimated from two fixed windows (``state/window.py``): a test
    that counts exactly what one window admitted reads a slightly decayed count (49.99 for 50) once the
    wall clock crosses a window boundary mid-test. Starting clear of the edge keeps such a test exact."""
    left = window_s - time.time() % window_s
    if left < margin_s:
        time.sleep(left + 0.05)
