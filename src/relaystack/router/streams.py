"""Streams through the router: committed at the first event, bounded in time after it.

Before the first event reaches the client, a stream may still be retried or sent elsewhere:
the router reads that first block itself (``first_block``) inside the attempt. After it, a
failure can only end the stream with an error event, so ``guard`` only bounds the rest: the
silence between two events (``idle_s``) and the attempt's end (``total_s`` or the request's
deadline, whichever is first). A stalled stream ends with an ``upstream_timeout`` error event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from relaystack.errors import RelaystackError, UpstreamTimeoutError

__all__ = ["first_block", "guard"]

# gets the error a stream ended with (None: it finished, or the client went away)
OnEnd = Callable[[RelaystackError | None], Awaitable[None]]


async def first_block(blocks: AsyncIterator[bytes]) -> bytes | None:
    """The first non-empty block; None if the stream ended without one."""
    async for block in blocks:
        if block:
            return block
    return None


async def guard(
    first: bytes | None,
    blocks: AsyncIterator[bytes],
    *,
    idle_s: float | None,
    end_at: float | None,
    end_reason: str,
    on_end: OnEnd,
) -> AsyncIterator[bytes]:
    """``first``, then the rest of ``blocks`` under the idle and end bounds (loop time)."""
    failure: RelaystackError | None = None
    try:
        if first is not None:
            yield first
        loop = asyncio.get_running_loop()
        while True:
            limit, why = _limit(loop.time(), idle_s, end_at, end_reason)
            try:
                if limit is None:
                    block = await anext(blocks)
                else:
                    async with asyncio.timeout_at(limit):
                        block = await anext(blocks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                failure = UpstreamTimeoutError(f"The upstream stream stopped: {why}; the answer is incomplete.")
                raise failure from None
            yield block
    except RelaystackError as exc:
        failure = exc
        raise
    finally:
        aclose = getattr(blocks, "aclose", None)
        if aclose is not None:
            await aclose()
        await on_end(failure)


def _limit(now: float, idle_s: float | None, end_at: float | None, end_reason: str) -> tuple[float | None, str]:
    if idle_s is None:
        return end_at, end_reason
    idle_at = now + idle_s
    if end_at is not None and end_at <= idle_at:
        return end_at, end_reason
    return idle_at, f"no event for {idle_s:g} s (routing timeouts.idle_s)"
