"""Polling for something another process or a background task will make true (no timing asserts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["eventually"]


async def eventually(predicate: Callable[[], bool], timeout_s: float, every_s: float = 0.02) -> bool:
    """True as soon as ``predicate()`` is; False once ``timeout_s`` passed without it."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every_s)
    return True
