"""The two ``UpstreamResponse`` implementations of the recorder.

``ReplayResponse`` is synthesised from a recording (plus an optional fault, or the failure
a recorded stream ended with); ``CapturingResponse`` relays a live response piece by piece
while keeping a copy, and hands the copy over when the body ended normally (or, if asked,
what came before the upstream broke off).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from relaystack.errors import RelaystackError, UpstreamConnectionError
from relaystack.recording import faults
from relaystack.recording.codec import DONE_EVENT, SSECollector
from relaystack.recording.faults import MALFORMED_EVENT, FaultSpec
from relaystack.upstream.base import ResponseHeaders, UpstreamResponse

__all__ = ["Capture", "CapturingResponse", "ReplayResponse"]


class ReplayResponse:
    """A response whose body is a list of pieces: SSE events (then ``[DONE]``) or one JSON body."""

    __slots__ = ("_closed", "_done_event", "_end_error", "_fault", "_pieces", "_stream", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        pieces: list[bytes],
        *,
        stream: bool,
        fault: FaultSpec | None = None,
        end_error: RelaystackError | None = None,
        done_event: bool = True,
    ) -> None:
        self.status = status
        # case-insensitive, as the live upstream's: callers ask for "Retry-After" or "content-type"
        self.headers: Mapping[str, str] = ResponseHeaders.of(headers)
        self._pieces = pieces
        self._stream = stream
        self._fault = fault
        # a recorded stream that broke: raised after its pieces, instead of [DONE]
        self._end_error = end_error
        # False: the recorded upstream ended the stream without [DONE] (watsonx); replayed the same
        self._done_event = done_event
        self._closed = False

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.iter_chunks()])

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        fault = self._fault
        for position, piece in enumerate(self._pieces):
            if fault is not None:
                async for extra in self._apply(fault, position):
                    yield extra
            if self._closed:
                return
            yield piece
        if self._end_error is not None:
            raise self._end_error
        if self._stream:
            if fault is not None:
                async for extra in self._apply(fault, len(self._pieces)):
                    yield extra
            if self._done_event:
                yield DONE_EVENT

    async def _apply(self, fault: FaultSpec, position: int) -> AsyncIterator[bytes]:
        """What the fault does before chunk ``position`` (``len(pieces)``: before ``[DONE]``)."""
        if fault.stall is not None and fault.stall_after == position:
            await faults.stall(fault.stall)
        if fault.malformed_after == position:
            yield MALFORMED_EVENT
        if fault.cut_after == position:
            raise UpstreamConnectionError(
                f"The upstream connection broke mid-stream: injected fault (cut-after={position})."
            )

    async def aclose(self) -> None:
        self._closed = True


@dataclass(slots=True)
class Capture:
    """What a live response carried, once its body ended normally."""

    streaming: bool
    body: bytes = b""
    payloads: list[bytes] = field(default_factory=list)
    done: bool = False


class CapturingResponse:
    """Relays the inner response unchanged (nothing is buffered before it is yielded)."""

    __slots__ = ("_completed", "_inner", "_on_complete", "_on_failure", "_streaming", "headers", "status")

    def __init__(
        self,
        inner: UpstreamResponse,
        *,
        streaming: bool,
        on_complete: Callable[[Capture], Awaitable[None]],
        on_failure: Callable[[Capture, RelaystackError], Awaitable[None]] | None = None,
    ) -> None:
        self._inner = inner
        self._streaming = streaming
        self._on_complete = on_complete
        # called with what came before the upstream broke off mid-body (then the error propagates)
        self._on_failure = on_failure
        self._completed = False
        self.status = inner.status
        self.headers: Mapping[str, str] = inner.headers

    async def read(self) -> bytes:
        body = await self._inner.read()
        if self._streaming:
            collector = SSECollector()
            collector.feed(body)
            collector.close()
            await self._complete(Capture(True, payloads=collector.payloads, done=collector.done))
        else:
            await self._complete(Capture(False, body=body))
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        collector = SSECollector() if self._streaming else None
        buffer = bytearray()
        try:
            async for chunk in self._inner.iter_chunks():
                if collector is not None:
                    collector.feed(chunk)
                    if collector.done and not self._completed:
                        # written before [DONE] is passed on: relays stop reading at [DONE] and
                        # never resume this generator
                        await self._complete(Capture(True, payloads=list(collector.payloads), done=True))
                else:
                    buffer += chunk
                yield chunk
        except RelaystackError as exc:
            if self._on_failure is not None and not self._completed:
                self._completed = True
                payloads = list(collector.payloads) if collector is not None else []
                await self._on_failure(Capture(self._streaming, bytes(buffer), payloads), exc)
            raise
        # reached when the upstream body ended normally and the caller read it all
        if collector is not None:
            collector.close()
            await self._complete(Capture(True, payloads=collector.payloads, done=collector.done))
        else:
            await self._complete(Capture(False, body=bytes(buffer)))

    async def _complete(self, capture: Capture) -> None:
        if not self._completed:
            self._completed = True
            await self._on_complete(capture)

    async def aclose(self) -> None:
        await self._inner.aclose()
