"""What every front-end request shares with ``POST /v1/chat/completions``: the same pipeline.

A front-end handler reads a bounded JSON body, builds a ``RequestContext`` (``api`` set to its
name), lets the gate admit it, sends a chat-completions body through the router (never a
provider directly), and settles the gate before its last byte. ``Frontend`` holds those
pieces; the handlers (``responses_routes``, ``messages_routes``) only translate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from relaystack.api.asgi import Receive, Scope, Send, header, max_attempts_header, parse_json_object, read_body
from relaystack.api.inference import (
    CLIENT_CLOSED,
    DisconnectWatcher,
    InferenceSettings,
    RequestEnded,
    note_failure,
    provider_data_header,
    scrubbed_answer,
)
from relaystack.context import RequestContext
from relaystack.errors import InvalidRequestError, RelaystackError
from relaystack.gateway import Gate
from relaystack.providers.base import JsonReply, Reply, StreamReply
from relaystack.redaction import bind_request, key_like_values
from relaystack.router import Router

__all__ = ["SSE_HEADERS", "Frontend", "TrackedSend", "sse_block"]

log = logging.getLogger("relaystack.frontends")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def sse_block(event_type: str, payload: dict[str, Any]) -> bytes:
    """One server-sent event with an ``event:`` line, as OpenAI and Anthropic send them."""
    return b"event: " + event_type.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class TrackedSend:
    """A handler's ``send``: notes whether the response started (a bug after that cannot become a
    500), and keeps the send under it as ``raw``: under relaystack's server the server's own, which
    ``api.stream_out.StreamOut`` needs to write a stream in fewer writes (a handler writing through
    it sets ``started`` itself)."""

    __slots__ = ("raw", "started")

    def __init__(self, raw: Send) -> None:
        self.raw = raw
        self.started = False

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.raw(message)


@dataclass(slots=True)
class Frontend:
    """The pipeline pieces a front-end shares with the chat completions route."""

    router: Router
    gate: Gate
    settings: InferenceSettings
    # the access log and health book, as for the chat route
    on_end: RequestEnded | None = None

    async def read_json(self, scope: Scope, receive: Receive, ctx: RequestContext) -> dict[str, Any]:
        """The request's body, its size and output cap noted on ``ctx`` (a budget's estimate)."""
        raw = await read_body(scope, receive, self.settings.max_body_bytes, self.settings.body_timeout_s)
        body = parse_json_object(raw)
        ctx.note_size(len(raw), body)
        return body

    async def admit(self, scope: Scope, ctx: RequestContext) -> None:
        """Per-request keys and faults from the headers, then the gate (auth, limits)."""
        bind_request(ctx.redactor)  # log lines of this request are scrubbed of its secrets
        ctx.provider_data = provider_data_header(scope)
        if ctx.provider_data:
            ctx.redactor.add(key_like_values(ctx.provider_data))
        ctx.fault = self._fault(scope)
        ctx.max_attempts = max_attempts_header(scope)
        await self.gate.admit(scope, ctx)

    async def send_chat(self, body: dict[str, Any], ctx: RequestContext) -> Reply:
        """The chat reply, scrubbed of the request's secrets as the chat route scrubs it: a JSON
        answer before it is translated, every error (raised now or by the stream) in every field,
        and noted (``note_failure``: the access log's code, the malformed-stream counter)."""
        try:
            reply = (await self.router.send("chat", body, ctx)).reply
        except RelaystackError as exc:
            note_failure(ctx, exc)
            raise
        if isinstance(reply, JsonReply):
            return JsonReply(scrubbed_answer(reply.data, ctx)[0], reply.status)
        if reply.forgo_stored is not None:  # a front-end stores its own object, not the chat stream
            reply.forgo_stored()
        return StreamReply(_noting_errors(reply.blocks, ctx), reply.close, reply.hidden, reply.final_usage)

    async def settle(self, ctx: RequestContext, status: int, usage: dict[str, Any] | None) -> None:
        ctx.status = status
        ctx.usage = usage
        await self.gate.settle(ctx)

    def _fault(self, scope: Scope) -> str | None:
        value = header(scope, b"x-relaystack-fault")
        if value is None:
            return None
        if not self.settings.allow_faults:
            raise InvalidRequestError(
                "X-Relaystack-Fault is only honoured in replay mode (relaystack run --record-mode replay).",
                param="X-Relaystack-Fault",
            )
        return value.decode("latin-1")

    def ended(self, scope: Scope, ctx: RequestContext, error: RelaystackError | None = None) -> None:
        """The request is over (``error``: it was refused before it started)."""
        if error is not None:
            note_failure(ctx, error)
        if self.on_end is not None:
            self.on_end(scope, ctx)

    async def serve(
        self,
        scope: Scope,
        ctx: RequestContext,
        receive: Receive,
        send: Send,
        handler: Callable[[Send], Awaitable[None]],
        on_crash: Callable[[Send, RelaystackError], Awaitable[None]],
        what: str,
    ) -> None:
        """Run ``handler`` so that a client going away cancels it (the upstream call included)
        and a bug becomes a 500 in the front-end's error shape, never a stack trace."""
        # the server's disconnect hook where there is one: a watcher task per request would end
        # cancelled, its traceback a reference cycle holding the request's objects until a GC pass
        watcher = DisconnectWatcher(receive, scope)
        tracked = TrackedSend(watcher.wrap(send))
        try:
            await handler(tracked)
        except asyncio.CancelledError:
            if not watcher.disconnected:
                raise
            ctx.status, ctx.error_code = CLIENT_CLOSED, "client_closed_request"
            log.debug("Client went away; %s request cancelled.", what)
        except Exception:
            log.exception("Unexpected error serving %s", what)
            if not tracked.started:
                await on_crash(tracked, _internal_error())
            elif not watcher.complete:
                await _end_started_response(tracked)
        finally:
            watcher.stop()
            # the gate's settle runs on every path: a cancelled or crashed request gives back its slot
            if getattr(ctx.principal, "settled", True) is False:
                await self.gate.settle(ctx)
            self.ended(scope, ctx)


async def _noting_errors(blocks: AsyncIterator[bytes], ctx: RequestContext) -> AsyncIterator[bytes]:
    """The blocks (scrubbed by the relay already); an error they end with goes through
    ``note_failure`` (scrubbed of the request's secrets too: per-request keys, the process's)."""
    try:
        async for block in blocks:
            yield block
    except RelaystackError as exc:
        note_failure(ctx, exc)
        raise
    finally:
        aclose = getattr(blocks, "aclose", None)
        if aclose is not None:
            await aclose()


async def _end_started_response(send: Send) -> None:
    """End a response a bug interrupted after it started. Under relaystack's server the watcher
    does not see the response's end (the server does), so it may have ended already: the server
    then refuses another body with a RuntimeError, and there is nothing left to end."""
    with contextlib.suppress(RuntimeError):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _internal_error() -> RelaystackError:
    return RelaystackError("Internal server error. The server log has the details.", code="internal_error")
