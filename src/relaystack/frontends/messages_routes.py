"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` (raw ASGI).

The key may come as ``x-api-key`` (the Anthropic SDK's header) or ``Authorization: Bearer``:
the gate sees an ``x-api-key`` as a bearer token, so whatever relaystack's auth accepts works
with both. ``anthropic-version`` and ``anthropic-beta`` are accepted and need nothing.
Errors are Anthropic's ``{"type": "error", "error": {"type", "message"}}`` with the status.

``count_tokens``: a local model counts exactly (its own tokenizer and chat template, through a
one-token generation in the normal pipeline); a remote provider has no tokenizer endpoint on
the chat-completions API, so the answer is an estimate (about four characters a token, plus a
few tokens a message), labelled ``"estimated": true`` and ``X-Relaystack-Token-Count: estimate``.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from relaystack.api.asgi import Receive, Scope, Send, header, send_raw_json
from relaystack.context import RequestContext
from relaystack.errors import RelaystackError
from relaystack.frontends.chat_reader import ChatTurn, blocks_of
from relaystack.frontends.messages_output import MessagesStream, anthropic_error, message_object, new_message_id
from relaystack.frontends.messages_request import MessagesRequest, parse_messages_request
from relaystack.frontends.pipeline import SSE_HEADERS, Frontend

__all__ = ["MessagesRoutes", "estimate_tokens"]

# per message: role and separators, as chat templates add them (an estimate's constant)
_TOKENS_PER_MESSAGE = 4
_CHARS_PER_TOKEN = 4


async def send_anthropic_error(send: Send, exc: RelaystackError) -> None:
    extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send_raw_json(send, exc.status_code, orjson.dumps(anthropic_error(exc)), extra)


def _with_bearer(scope: Scope) -> Scope:
    """The scope with ``x-api-key`` also given as ``Authorization: Bearer`` (unless one is set)."""
    key = header(scope, b"x-api-key")
    if key is None or header(scope, b"authorization") is not None:
        return scope
    return {**scope, "headers": [*scope["headers"], (b"authorization", b"Bearer " + key)]}


def _ignored(request: MessagesRequest) -> list[tuple[bytes, bytes]]:
    return [(b"x-relaystack-ignored", ", ".join(request.ignored).encode())] if request.ignored else []


def _stop_sequences(request: MessagesRequest) -> list[str]:
    stops = request.body.get("stop_sequences")
    return list(stops) if isinstance(stops, list) else []


class MessagesRoutes:
    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend

    async def _admitted(
        self, scope: Scope, receive: Receive, send: Send, *, count_only: bool
    ) -> tuple[MessagesRequest, RequestContext] | None:
        ctx = RequestContext("chat", api="messages")
        try:
            request = parse_messages_request(await self.frontend.read_json(scope, receive, ctx), count_only=count_only)
            ctx.model = request.model
            ctx.stream = request.stream
            await self.frontend.admit(_with_bearer(scope), ctx)
        except RelaystackError as exc:
            await send_anthropic_error(send, exc)
            self.frontend.ended(scope, ctx, exc)
            return None
        return request, ctx

    # -- POST /v1/messages -------------------------------------------------------------------------
    async def create(self, scope: Scope, receive: Receive, send: Send) -> None:
        admitted = await self._admitted(scope, receive, send, count_only=False)
        if admitted is None:
            return
        request, ctx = admitted

        async def answer(tracked: Send) -> None:
            if request.stream:
                await self._stream(request, ctx, tracked)
            else:
                await self._json(request, ctx, tracked)

        await self.frontend.serve(scope, ctx, receive, send, answer, send_anthropic_error, "a Messages request")

    async def _json(self, request: MessagesRequest, ctx: RequestContext, send: Send) -> None:
        turn = ChatTurn()
        try:
            reply = await self.frontend.send_chat(request.chat_body, ctx)
            async for block in blocks_of(reply):
                turn.add_block(block)
        except RelaystackError as exc:
            await self.frontend.settle(ctx, exc.status_code, turn.usage)
            await send_anthropic_error(send, exc)
            return
        message = message_object(new_message_id(), request.model, turn, _stop_sequences(request))
        await self.frontend.settle(ctx, 200, turn.usage)
        await send_raw_json(send, 200, orjson.dumps(message), ctx.answer_headers(_ignored(request)))

    async def _stream(self, request: MessagesRequest, ctx: RequestContext, send: Send) -> None:
        try:
            reply = await self.frontend.send_chat(request.chat_body, ctx)
        except RelaystackError as exc:  # nothing sent yet: the status passes through
            await self.frontend.settle(ctx, exc.status_code, None)
            await send_anthropic_error(send, exc)
            return
        stream = MessagesStream(new_message_id(), request.model, _stop_sequences(request))
        headers = ctx.answer_headers([*SSE_HEADERS, *_ignored(request)])
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": stream.start(), "more_body": True})
        try:
            async for block in blocks_of(reply):
                data = stream.feed_block(block)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
        except RelaystackError as exc:
            await self.frontend.settle(ctx, exc.status_code, stream.turn.usage)
            await send({"type": "http.response.body", "body": stream.fail(exc), "more_body": False})
            return
        last = stream.finish()
        await self.frontend.settle(ctx, 200, stream.turn.usage)
        await send({"type": "http.response.body", "body": last, "more_body": False})

    # -- POST /v1/messages/count_tokens --------------------------------------------------------------
    async def count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        admitted = await self._admitted(scope, receive, send, count_only=True)
        if admitted is None:
            return
        request, ctx = admitted

        async def answer(tracked: Send) -> None:
            try:
                provider, _call = await self.frontend.router.registry.resolve_fresh(request.model, "llm")
                if provider.provider_type.startswith("inline::"):
                    tokens = await self._count_exactly(request, ctx)
                    await self.frontend.settle(ctx, 200, None)
                    await send_raw_json(tracked, 200, orjson.dumps({"input_tokens": tokens}),
                                        [(b"x-relaystack-token-count", b"exact")])  # fmt: skip
                    return
            except RelaystackError as exc:
                await send_anthropic_error(tracked, exc)
                return
            estimate = estimate_tokens(request.chat_body)
            await self.frontend.settle(ctx, 200, None)
            await send_raw_json(tracked, 200, orjson.dumps({"input_tokens": estimate, "estimated": True}),
                                [(b"x-relaystack-token-count", b"estimate")])  # fmt: skip

        await self.frontend.serve(scope, ctx, receive, send, answer, send_anthropic_error, "a count_tokens request")

    async def _count_exactly(self, request: MessagesRequest, ctx: RequestContext) -> int:
        """The prompt tokens of a one-token generation: the model's own tokenizer and template."""
        body = {**request.chat_body, "max_tokens": 1, "stream": False}
        turn = ChatTurn()
        async for block in blocks_of(await self.frontend.send_chat(body, ctx)):
            turn.add_block(block)
        return int((turn.usage or {}).get("prompt_tokens") or 0)


def estimate_tokens(chat_body: dict[str, Any]) -> int:
    """About four characters a token over the text, plus a few tokens a message and the tools' JSON."""
    chars = 0
    messages = chat_body.get("messages") or []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
        for call in message.get("tool_calls") or ():
            chars += len(orjson.dumps(call))
    if chat_body.get("tools"):
        chars += len(orjson.dumps(chat_body["tools"]))
    return math.ceil(chars / _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * len(messages)
