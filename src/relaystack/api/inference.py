"""The hot path: POST chat/completions, completions, embeddings, as raw ASGI handlers.

Flow: bounded body -> orjson -> field checks -> gate (auth, limits) -> router -> provider -> reply
-> gate (usage).
A JSON reply is stored (chat, unless ``store: false``) and sent; a stream is relayed
block by block as the upstream delivers it, then stored (as its events, assembled when read), then ``[DONE]``.
A client that goes away cancels the request, upstream included.

Secrets: every byte written for a request passes the request's ``Redactor`` (``ctx.redactor``:
provider-data keys and the provider's declared secrets): error JSON in every field, stream
blocks (scrubbed by the relay), stream error events, stored rows, and log lines (bound to the
request's task). A completion that could not be stored is logged with its id and counted
(``relaystack.counters``, shown in /v1/health).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from relaystack import sse
from relaystack.api.asgi import (
    DISCONNECT_HOOKS,
    HEAD_WRITER,
    Receive,
    Scope,
    Send,
    header,
    internal_error,
    max_attempts_header,
    parse_json_object,
    read_body,
    send_error,
    send_json_with_lines,
    send_raw_json,
)
from relaystack.api.rerank import check_rerank
from relaystack.api.stream_out import StreamOut
from relaystack.api.validate import check_chat, check_completion, check_embeddings
from relaystack.chat_stream import first_event
from relaystack.context import Operation, RequestContext
from relaystack.counters import COUNTERS
from relaystack.errors import (
    InvalidRequestError,
    RelaystackError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from relaystack.gateway import Gate, OpenGate
from relaystack.providers.base import JsonReply, StreamReply
from relaystack.providers.sse_relay import MALFORMED_EVENT
from relaystack.recording.faults import FaultSpec
from relaystack.redaction import bind_request, key_like_values
from relaystack.router import Router
from relaystack.storage.base import Store, UsageRow
from relaystack.telemetry import current as telemetry

__all__ = [
    "CLIENT_CLOSED", "DisconnectWatcher", "InferenceRoutes", "InferenceSettings", "RequestEnded", "note_failure",
    "provider_data_header", "scrubbed_answer", "scrubbed_payload",
]

log = logging.getLogger("relaystack.api")

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
# tells the client its completion was answered but could not be stored
_STORE_FAILED = [(b"x-relaystack-store", b"failed")]
_UPSTREAM_FAILURES = (UpstreamError, UpstreamConnectionError, UpstreamProtocolError, UpstreamTimeoutError)


@dataclass(frozen=True, slots=True)
class InferenceSettings:
    max_body_bytes: int = 16 * 1024 * 1024
    body_timeout_s: float = 30.0
    # X-Relaystack-Fault is honoured only when replaying recordings
    allow_faults: bool = False


@dataclass(frozen=True, slots=True)
class _Kind:
    name: Operation
    check: Callable[[dict[str, Any]], str]
    stored: bool


CHAT = _Kind("chat", check_chat, stored=True)
COMPLETION = _Kind("completion", check_completion, stored=False)
EMBEDDINGS = _Kind("embeddings", check_embeddings, stored=False)
RERANK = _Kind("rerank", check_rerank, stored=False)


# called once per request when it ended (ctx.status set): the access log and provider health
RequestEnded = Callable[[Scope, RequestContext], None]

# nginx's "client closed request": the status a request gets when its client went away
CLIENT_CLOSED = 499


class InferenceRoutes:
    def __init__(
        self, router: Router, store: Store | None, settings: InferenceSettings, gate: Gate | None = None,
        on_end: RequestEnded | None = None,
    ) -> None:
        self.router = router
        self.store = store
        self.settings = settings
        self.gate: Gate = gate or OpenGate()
        self.on_end = on_end
        # the store commits a request's usage in its completion's transaction: one write per request
        self._usage_rides = store is not None and store.commits_usage_with_completions

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handle(CHAT, scope, receive, send)

    async def completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handle(COMPLETION, scope, receive, send)

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handle(EMBEDDINGS, scope, receive, send)

    async def rerank(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._handle(RERANK, scope, receive, send)

    async def _handle(self, kind: _Kind, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = RequestContext(kind.name)
        bind_request(ctx.redactor)
        try:
            raw = await read_body(scope, receive, self.settings.max_body_bytes, self.settings.body_timeout_s)
            body = parse_json_object(raw)
            ctx.model = kind.check(body)
            ctx.note_size(len(raw), body)
            ctx.stream = body.get("stream") is True and kind is not EMBEDDINGS
            ctx.provider_data = provider_data_header(scope)
            if ctx.provider_data:
                ctx.redactor.add(key_like_values(ctx.provider_data))
            ctx.fault = self._fault(scope, ctx.stream)
            ctx.max_attempts = max_attempts_header(scope)
            await self.gate.admit(scope, ctx)
            # llama-stack never sent [DONE] and its client (0.2.x) fails to parse it
            done = b"" if header(scope, b"x-llamastack-client-version") else sse.DONE_EVENT
        except RelaystackError as exc:
            note_failure(ctx, exc)
            await send_error(send, exc)
            self._ended(scope, ctx)
            telemetry().request_done(scope["path"], ctx)
            return
        watcher = DisconnectWatcher(receive, scope)
        try:
            await self._serve(kind, body, ctx, watcher.wrap(send), done, scope)
        except asyncio.CancelledError:
            if not watcher.disconnected:
                raise
            ctx.status, ctx.error_code = CLIENT_CLOSED, "client_closed_request"
            log.debug("Client went away; %s request cancelled.", kind.name)
        finally:
            watcher.stop()
            # every path settles before its last byte; this catches cancellations (idempotent)
            if getattr(ctx.principal, "settled", True) is False:
                await self.gate.settle(ctx)
            self._ended(scope, ctx)
            telemetry().request_done(scope["path"], ctx)

    def _ended(self, scope: Scope, ctx: RequestContext) -> None:
        if self.on_end is not None:
            self.on_end(scope, ctx)

    async def _serve(
        self, kind: _Kind, body: dict[str, Any], ctx: RequestContext, send: Send, done: bytes, scope: Scope
    ) -> None:
        try:
            if kind.stored and self._should_store(body):
                self._check_store()
            routed = await self.router.send(kind.name, body, ctx)
            reply = routed.reply
            if isinstance(reply, StreamReply):
                await self._stream(kind, reply, body, ctx, send, done, scope)
                return
            payload = scrubbed_payload(reply, ctx)
            extra = ctx.routing_headers()
            ctx.status = reply.status
            ctx.usage = reply.usage
            stored: bool | None = None
            if kind.stored and self._should_store(body):
                usage = self.gate.begin_settle(ctx, self._usage_rides)  # one write: the completion and its usage
                stored = await self._store(reply.data, body, payload, usage)
                if not stored:
                    extra += _STORE_FAILED
            await self.gate.settle(ctx, stored)
            await _send_answer(send, scope, reply.status, payload, extra, ctx)
        except RelaystackError as exc:
            note_failure(ctx, exc)
            if isinstance(exc, _UPSTREAM_FAILURES):
                telemetry().upstream_error(ctx.provider_id or "", exc.status_code)
            await self.gate.settle(ctx)
            await send_error(send, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Unexpected error serving %s for model %s", kind.name, ctx.model)
            error = internal_error()
            note_failure(ctx, error)
            await self.gate.settle(ctx)
            await send_error(send, error)

    async def _stream(
        self, kind: _Kind, reply: StreamReply, body: dict[str, Any], ctx: RequestContext, send: Send, done: bytes,
        scope: Scope,
    ) -> None:
        blocks = reply.blocks
        storing = kind.stored and self._should_store(body)
        if not storing and reply.forgo_stored is not None:
            reply.forgo_stored()
        # the blocks, kept for the store when the reply does not keep its stored form itself
        keep: list[bytes] | None = [] if storing and reply.stored_form is None else None
        out = StreamOut(send, scope, ctx, _sse_headers)
        # the block the upstream's [DONE] came with: written with ours, after the stream is settled
        last = b""
        relayed = False
        try:
            async for block in blocks:
                if not block:
                    continue
                relayed = True
                if keep is not None:
                    keep.append(block)
                if reply.ended is not None and reply.ended():
                    last = block
                    continue
                await out.block(block)
        except RelaystackError as exc:
            note_failure(ctx, exc)
            telemetry().stream_failure(ctx.provider_id or "", _failure_reason(exc))
            await self.gate.settle(ctx)
            await _end_with_error(out, exc, last)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Unexpected error relaying a %s stream for model %s", kind.name, ctx.model)
            error = internal_error()
            note_failure(ctx, error)
            telemetry().stream_failure(ctx.provider_id or "", "internal")
            await self.gate.settle(ctx)
            await _end_with_error(out, error, last)
            return
        finally:
            aclose = getattr(blocks, "aclose", None)
            if aclose is not None:
                await aclose()
            await reply.aclose()
        hidden = reply.hidden() if reply.hidden is not None else b""
        ctx.usage = reply.usage
        ctx.status = 200
        stored: bool | None = None
        if storing and relayed:
            usage = self.gate.begin_settle(ctx, self._usage_rides)  # one write: the stream and its usage
            blob = reply.stored_form(hidden) if reply.stored_form is not None else b"".join([*(keep or ()), hidden])
            stored = await self._store_stream(blob, body, ctx.model or "", usage)
        await self.gate.settle(ctx, stored)
        await out.end(last, done)

    def _check_store(self) -> None:
        """A store known to be down (PostgreSQL unreachable) refuses with 503 before the upstream
        is called: nothing is generated that could not be stored."""
        assert self.store is not None
        error = self.store.health().error
        if error is not None:
            raise error

    def _should_store(self, body: dict[str, Any]) -> bool:
        return self.store is not None and body.get("store") is not False

    async def _store(
        self, completion: dict[str, Any], body: dict[str, Any], payload: bytes, usage: UsageRow | None
    ) -> bool:
        """Store and wait for the commit. False (and a log line) if storing failed: the answer
        is still sent, since withholding a generated completion would lose it for good."""
        assert self.store is not None
        completion_id = completion.get("id")
        try:
            if not isinstance(completion_id, str) or not completion_id:
                raise ValueError("the upstream's answer has no string 'id'")
            await self.store.put_completion(completion, body.get("messages") or [], payload, usage)
        except Exception as exc:
            _store_failed("chat completion", completion_id, exc)
            telemetry().store_failure("completion")
            return False
        return True

    async def _store_stream(self, events: bytes, body: dict[str, Any], model: str, usage: UsageRow | None) -> bool:
        """Store a finished stream as its events; reads assemble it (see relaystack.chat_stream).

        The client already has every event; a failure is logged (with the id) and counted, and
        the stream still ends with ``[DONE]``: withholding it would lose a delivered answer."""
        assert self.store is not None
        completion_id: Any = None
        try:
            first = first_event(events)
            completion_id = first.get("id") if first is not None else None
            if not isinstance(completion_id, str) or not completion_id:
                raise ValueError("the upstream's chunks have no string 'id'")
            created = first.get("created") if first is not None else None
            created = int(created) if isinstance(created, int | float) else int(time.time())
            await self.store.put_stream(completion_id, created, model, events, body.get("messages") or [], usage)
        except Exception as exc:
            _store_failed("streamed chat completion", completion_id, exc)
            telemetry().store_failure("completion")
            return False
        return True

    def _fault(self, scope: Scope, stream: bool) -> str | None:
        value = header(scope, b"x-relaystack-fault")
        if value is None:
            return None
        if not self.settings.allow_faults:
            raise InvalidRequestError(
                "X-Relaystack-Fault is only honoured in replay mode (relaystack run --record-mode replay).",
                param="X-Relaystack-Fault",
            )
        text = value.decode("latin-1")
        FaultSpec.parse(text).check_applies(stream=stream)  # a 400 now, not a fault silently skipped
        return text


async def _send_answer(
    send: Send, scope: Scope, status: int, payload: bytes, extra: list[tuple[bytes, bytes]], ctx: RequestContext
) -> None:
    """A JSON answer with the caller's x-ratelimit-* headers: as lines relaystack's server writes
    as they are when it can (six headers it need not check), else as pairs."""
    if HEAD_WRITER in scope:
        lines = ctx.limit_lines()
        if lines and await send_json_with_lines(send, scope, status, payload, extra, lines):
            return
    await send_raw_json(send, status, payload, ctx.with_limit_headers(extra))


def note_failure(ctx: RequestContext, exc: RelaystackError) -> None:
    """A request failed with ``exc``: scrub the request's secrets from it (in place, before it is
    sent or logged), note its status and code for the access log and health, count a stream
    failed by a malformed upstream event."""
    ctx.redactor.error(exc)
    ctx.status = exc.status_code
    ctx.error_code = exc.code or exc.type
    if exc.code == MALFORMED_EVENT:
        COUNTERS.malformed_streams += 1
        log.warning("Stream for model %s failed: %s", ctx.model, exc.message)


def _sse_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    return ctx.answer_headers(_SSE_HEADERS)


def _failure_reason(exc: RelaystackError) -> str:
    """A bounded label (the upstream's own error code is its free text)."""
    if isinstance(exc, UpstreamTimeoutError):
        return "timeout"
    if isinstance(exc, UpstreamProtocolError):
        return "protocol"
    if isinstance(exc, UpstreamConnectionError):
        return "connection"
    if isinstance(exc, UpstreamError):
        return "upstream_error"
    return "error"


async def _end_with_error(out: StreamOut, exc: RelaystackError, last: bytes) -> None:
    """The stream's error event last (after the block held as the last one, if any), or an error
    answer if nothing was sent yet."""
    if not (out.started or last):
        await send_error(out.send, exc)
        return
    if last:
        await out.block(last)
    await out.end(b"", sse.frame(orjson.dumps(exc.to_dict())))


def _store_failed(what: str, completion_id: Any, exc: Exception) -> None:
    COUNTERS.store_failures += 1
    log.error("Could not store %s %r (answered, not stored): %s", what, completion_id, exc)


def scrubbed_payload(reply: JsonReply, ctx: RequestContext) -> bytes:
    """The bytes of a JSON answer, without the request's secrets. An answer relayed as the
    upstream's bytes is scanned as it is; one that holds a secret is scrubbed field by field
    (``reply.data`` then holds the scrubbed object, which is what gets stored)."""
    raw = reply.raw
    if raw is not None and ctx.redactor.wire(raw) is raw:
        return raw
    data, payload = scrubbed_answer(reply.data, ctx)
    reply.data = data
    return payload


def scrubbed_answer(data: dict[str, Any], ctx: RequestContext) -> tuple[dict[str, Any], bytes]:
    """The answer to send and store, and its bytes, without the request's secrets (an upstream
    may echo a key anywhere). One ``bytes in`` per secret form: nothing is parsed twice."""
    payload = orjson.dumps(data)
    if ctx.redactor.wire(payload) is payload:
        return data, payload
    data = ctx.redactor.value(data)
    return data, orjson.dumps(data)


def provider_data_header(scope: Scope) -> dict[str, Any] | None:
    raw = header(scope, b"x-llamastack-provider-data") or header(scope, b"x-ogx-provider-data")
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        # the value is never echoed: it holds keys
        raise InvalidRequestError(
            'X-LlamaStack-Provider-Data must be a JSON object, e.g. {"together_api_key": "..."}.',
            param="X-LlamaStack-Provider-Data",
        )
    data.pop("__test_id", None)  # a test harness's marker (recording/testid.py), never a provider's
    return data


class DisconnectWatcher:
    """Cancels the request's task when the client disconnects before the response is complete.

    Under relaystack's server the protocol calls it (``DISCONNECT_HOOKS``); under another ASGI
    server a task awaits ``receive()`` for ``http.disconnect``."""

    __slots__ = ("_target", "_task", "complete", "disconnected")

    def __init__(self, receive: Receive, scope: Scope | None = None) -> None:
        self.disconnected = False
        self.complete = False
        self._target = asyncio.current_task()
        hooks = scope.get(DISCONNECT_HOOKS) if scope is not None else None
        if hooks is not None:
            hooks.append(self._lost)
            self._task: asyncio.Task[None] | None = None
        else:
            self._task = asyncio.get_running_loop().create_task(self._watch(receive, self._target))

    def _lost(self) -> None:
        """The server saw the client go before the response was complete."""
        self.disconnected = True
        if self._target is not None:
            self._target.cancel()

    def wrap(self, send: Send) -> Send:
        if self._task is None:
            return send  # the server knows when the response is complete
        async def tracking_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.complete = True
            await send(message)

        return tracking_send

    async def _watch(self, receive: Receive, target: asyncio.Task[Any] | None) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # uvicorn also answers receive() with a disconnect once the response is complete
                if not self.complete:
                    self.disconnected = True
                    if target is not None:
                        target.cancel()
                return

    def stop(self) -> None:
        if self._task is not None and not self.disconnected:
            self._task.cancel()
