"""Streams through the router: committed at the first event, bounded in time after it.

Before the first event reaches the client, a stream may still be retried or sent elsewhere:
the router reads that first block itself (``first_block``) inside the attempt. After it, a
failure can only end the stream with an error event, so ``guard`` only bounds the rest: the
silence between two events (``idle_s``) and the attempt's end (``total_s`` or the request's
deadline, whichever is first). A stalled stream ends with an ``upstream_timeout`` error event.

Only the time spent waiting on the upstream counts as silence (a client slow to read is not
the upstream's fault). The bounds are kept by the router's one sweeping timer (deadlines.py),
not a timeout per event: an event costs a clock read and two attribute writes; when the stream
is really silent the sweeper cancels the wait, which ``guard`` turns into the timeout error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from relaystack.errors import RelaystackError, UpstreamTimeoutError
from relaystack.router.deadlines import Deadlines, StreamBound

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
    deadlines: Deadlines,
) -> AsyncIterator[bytes]:
    """``first``, then the rest of ``blocks`` under the idle and end bounds (loop time)."""
    failure: RelaystackError | None = None
    bound = StreamBound(idle_s, end_at) if idle_s is not None or end_at is not None else None
    try:
        if first is not None:
            yield first
        if bound is None:
            async for block in blocks:
                yield block
            return
        loop = asyncio.get_running_loop()
        deadlines.add(bound)
        while True:
            now = loop.time()
            if end_at is not None and now >= end_at:  # passed while the client was reading
                failure = UpstreamTimeoutError(f"The upstream stream stopped: {end_reason}; the answer is incomplete.")
                raise failure
            bound.waiting_since = now
            try:
                block = await anext(blocks)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if not bound.expired():
                    raise  # the client went away (or someone else cancelled): not a timeout
                why = f"no event for {idle_s:g} s (routing timeouts.idle_s)" if bound.fired == "idle" \
                    else end_reason
                failure = UpstreamTimeoutError(f"The upstream stream stopped: {why}; the answer is incomplete.")
                raise failure from None
            bound.waiting_since = None
            yield block
    except RelaystackError as exc:
        failure = exc
        raise
    finally:
        if bound is not None:
            deadlines.discard(bound)
        aclose = getattr(blocks, "aclose", None)
        if aclose is not None:
            await aclose()
        await on_end(failure)
