"""A relayed stream's response, written in as few writes as the server allows.

Each write to the client's socket is a system call and a pass through the TCP stack, and uvicorn's
``send`` joins a chunk's framing with its body, a copy of each 100 KB block. Under relaystack's
server (``api.asgi.STREAM_WRITER``) a block is framed as one vectored write instead, the head goes
out with the first block, and the stream's last block (the one the upstream's ``[DONE]`` came
with) goes out with relaystack's ``[DONE]`` and the response's end: a stream the upstream sent at
once is one write instead of three. Under another server, or when the server cannot (paused
writes), the ASGI messages are sent as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from relaystack.api.asgi import STREAM_WRITER, Scope, Send, StreamHead, StreamWriter
from relaystack.context import RequestContext
from relaystack.telemetry import current as telemetry

__all__ = ["StreamOut"]


class StreamOut:
    """One stream's response: ``block`` for each checked block, then ``end`` once."""

    __slots__ = ("_ctx", "_first_block_timed", "_headers", "_timed", "_write", "send", "started")

    def __init__(self, send: Send, scope: Scope, ctx: RequestContext,
                 headers: Callable[[RequestContext], list[tuple[bytes, bytes]]], *,
                 first_block_is_first_token: bool = True) -> None:
        """``first_block_is_first_token`` False: the first block is not the answer's (a front-end's
        opening events); the caller says when the first token goes out (``first_token``)."""
        self.send = send
        self._write: StreamWriter | None = scope.get(STREAM_WRITER)
        self._ctx = ctx
        self._headers = headers
        self.started = False
        self._first_block_timed = first_block_is_first_token
        self._timed = False  # time to first token recorded

    def first_token(self) -> None:
        """The stream's time to first token recorded now, once."""
        if not self._timed:
            self._timed = True
            telemetry().first_token(self._ctx, time.monotonic() - self._ctx.started)

    async def block(self, block: bytes) -> None:
        """A block sent now (after the head, in the same write, if it is the first)."""
        head = self._head()
        if self._write is None or not self._write(self.send, head, [block], False):
            if head is not None:
                await self.send({"type": "http.response.start", "status": head[0], "headers": head[1]})
            await self.send({"type": "http.response.body", "body": block, "more_body": True})
        if head is not None and self._first_block_timed:
            self.first_token()

    async def start(self) -> None:
        """The head alone (a stream that ends with no block)."""
        head = self._head()
        if head is not None:
            await self.send({"type": "http.response.start", "status": head[0], "headers": head[1]})

    async def end(self, last: bytes, done: bytes) -> None:
        """The stream's held ``last`` block (may be empty), ``done`` and the response's end."""
        head = self._head()
        if last:
            self.first_token()
        pieces = [piece for piece in (last, done) if piece]
        if self._write is not None and self._write(self.send, head, pieces, True):
            return
        if head is not None:
            await self.send({"type": "http.response.start", "status": head[0], "headers": head[1]})
        if last:
            await self.send({"type": "http.response.body", "body": last, "more_body": True})
        await self.send({"type": "http.response.body", "body": done, "more_body": False})

    def _head(self) -> StreamHead | None:
        """The head to write now (status and headers), once; None once it was."""
        if self.started:
            return None
        self.started = True
        return 200, self._headers(self._ctx)
