"""Streams through the router: committed at the first event, bounded in time after it.

Before the first event reaches the client, a stream may still be retried or sent elsewhere:
the router reads that first block itself (``first_block``) inside the attempt. After it, a
failure can only end the stream with an error event, so ``guard`` only bounds the rest: the
silence between two events (``idle_s``) and the attempt's end (``total_s`` or the request's
deadline, whichever is first). A stalled stream ends with an ``upstream_timeout`` error event.

Only the time spent waiting on the upstream counts as silence (a client slow to read is not
the upstream's fault). The bounds are kept by one lazy timer per stream, not a timeout per
event: an event costs two attribute writes; the timer wakes at most once per bound and, when
the stream is really silent, cancels the wait, which ``guard`` turns into the timeout error.
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


class _Watchdog:
    """Cancels ``task`` when a wait on the upstream lasts ``idle_s`` or reaches ``end_at``."""

    __slots__ = ("_handle", "_loop", "_task", "end_at", "fired", "idle_s", "waiting_since")

    def __init__(self, idle_s: float | None, end_at: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self.idle_s = idle_s
        self.end_at = end_at
        self.waiting_since: float | None = None
        self.fired: str | None = None  # why it fired: "idle" or "end"
        self._handle: asyncio.TimerHandle | None = None

    def wait(self) -> bool:
        """A wait on the upstream begins; False if the end has already passed (do not wait)."""
        now = self._loop.time()
        if self.end_at is not None and now >= self.end_at:
            self.fired = "end"
            return False
        self.waiting_since = now
        if self._handle is None:
            self._arm(now)
        return True

    def _arm(self, since: float) -> None:
        idle_at = since + self.idle_s if self.idle_s is not None else None
        when = self.end_at if idle_at is None else (idle_at if self.end_at is None else min(idle_at, self.end_at))
        if when is not None:
            self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle = None
        since = self.waiting_since
        if since is None:
            # not waiting on the upstream (the client is reading): wait() re-arms, or this later
            if self.end_at is None or self._loop.time() < self.end_at:
                self._arm(self._loop.time())
            return
        now = self._loop.time()
        if self.end_at is not None and now >= self.end_at:
            self.fired = "end"
        elif self.idle_s is not None and now - since >= self.idle_s:
            self.fired = "idle"
        else:
            self._arm(since)  # an earlier wait's timer: this wait is not due yet
            return
        if self._task is not None:
            self._task.cancel()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


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
    watchdog = _Watchdog(idle_s, end_at) if idle_s is not None or end_at is not None else None
    try:
        if first is not None:
            yield first
        if watchdog is None:
            async for block in blocks:
                yield block
            return
        while True:
            if not watchdog.wait():
                failure = UpstreamTimeoutError(f"The upstream stream stopped: {end_reason}; the answer is incomplete.")
                raise failure
            try:
                block = await anext(blocks)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if watchdog.fired is None or task is None or task.uncancel() > 0:
                    raise  # the client went away (or someone else cancelled): not a timeout
                why = f"no event for {idle_s:g} s (routing timeouts.idle_s)" if watchdog.fired == "idle" \
                    else end_reason
                failure = UpstreamTimeoutError(f"The upstream stream stopped: {why}; the answer is incomplete.")
                raise failure from None
            watchdog.waiting_since = None
            yield block
    except RelaystackError as exc:
        failure = exc
        raise
    finally:
        if watchdog is not None:
            watchdog.stop()
        aclose = getattr(blocks, "aclose", None)
        if aclose is not None:
            await aclose()
        await on_end(failure)
