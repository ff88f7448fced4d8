"""The Responses API: ``POST /v1/responses`` (raw ASGI, hot) and the stored ones (Starlette).

``POST`` translates the request (``responses_request``, ``responses_input``), prepends the
stored conversation of ``previous_response_id``, sends one chat completion through the same
pipeline as ``/v1/chat/completions`` and translates the answer back: assembled into one
``response`` object, or as typed events (``responses_stream``). With ``store`` (the default)
the response, its conversation's input items and its chat messages are stored before the
client gets the last byte. ``GET``/``DELETE /v1/responses/{id}``, ``GET .../input_items`` and
``GET /v1/responses`` read that store. Errors are OpenAI's shape with the right status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaystack.api.asgi import Receive, Scope, Send, send_error, send_raw_json
from relaystack.api.stream_out import StreamOut
from relaystack.context import RequestContext
from relaystack.counters import COUNTERS
from relaystack.errors import ConflictError, InvalidRequestError, NotImplementedYetError, RelaystackError
from relaystack.frontends.chat_reader import ChatTurn, blocks_of
from relaystack.frontends.pipeline import SSE_HEADERS, Frontend, TrackedSend
from relaystack.frontends.responses_input import items_to_messages, listed_items
from relaystack.frontends.responses_output import (
    map_usage,
    new_response_id,
    now,
    restored_messages,
    stored_answer,
    turn_output,
    turn_status,
)
from relaystack.frontends.responses_render import ResponseTemplate
from relaystack.frontends.responses_request import ResponsesRequest, parse_responses_request
from relaystack.frontends.responses_stream import ResponsesStream
from relaystack.gateway.owner import owner_to_read, owner_to_record
from relaystack.json_routes import json_response
from relaystack.storage.base import RenderedResponse, ResponseStore
from relaystack.telemetry import current as telemetry

__all__ = ["ResponsesRoutes"]

log = logging.getLogger("relaystack.frontends")

_STORE_FAILED = [(b"x-relaystack-store", b"failed")]
_NO_STORE = (
    "This server keeps no responses (storage.inference_store is false in its run config, or its storage "
    "backend stores no responses): send the whole conversation as input instead of previous_response_id."
)


@dataclass(slots=True)
class _Prepared:
    request: ResponsesRequest
    body: dict[str, Any]  # the request as the response object echoes it
    chat_body: dict[str, Any]
    items: list[dict[str, Any]]  # the conversation's input items, this request's last
    messages: list[dict[str, Any]]  # the conversation as chat messages, without instructions
    owner: str | None = None  # the key that creates it (server.auth on)


class ResponsesRoutes:
    def __init__(self, frontend: Frontend, store: ResponseStore | None) -> None:
        self.frontend = frontend
        self.store = store

    # -- POST /v1/responses ---------------------------------------------------------------------
    async def create(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = RequestContext("chat", api="responses")
        try:
            request = parse_responses_request(await self.frontend.read_json(scope, receive, ctx))
            ctx.model = request.model
            ctx.stream = request.stream
            await self.frontend.admit(scope, ctx)
            prepared = await self._prepare(request, scope)
        except RelaystackError as exc:
            # refused after admission (an unknown previous_response_id): give back what the gate holds
            await self.frontend.settle(ctx, exc.status_code, None)
            await send_error(send, exc)
            self.frontend.ended(scope, ctx, exc)
            return

        async def answer(tracked: Send) -> None:
            if request.stream:
                await self._stream(prepared, ctx, tracked, scope)
            else:
                await self._json(prepared, ctx, tracked)

        await self.frontend.serve(scope, ctx, receive, send, answer, send_error, "a Responses request")

    async def _prepare(self, request: ResponsesRequest, scope: Scope) -> _Prepared:
        instructions = request.body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise InvalidRequestError("'instructions' must be a string.", param="instructions")
        if request.store and self.store is not None and (down := self.store.health().error) is not None:
            raise down  # known down (PostgreSQL unreachable): generate nothing that could not be stored
        before_items: list[dict[str, Any]] = []
        before_messages: list[dict[str, Any]] = []
        if request.previous_response_id is not None:
            before_items, before_messages = await self._conversation(request.previous_response_id, scope)
        new_messages = items_to_messages(request.items, before_messages)
        messages = [*before_messages, *new_messages]
        system = [{"role": "system", "content": instructions}] if instructions else []
        chat_body = {**request.chat_body, "messages": [*system, *messages]}
        body = {**request.body, "store": request.store and self.store is not None}
        items = [*before_items, *listed_items(request.items)]
        return _Prepared(request, body, chat_body, items, messages, owner_to_record(scope))

    async def _conversation(self, previous_id: str, scope: Scope) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if self.store is None:
            raise NotImplementedYetError(_NO_STORE, param="previous_response_id")
        try:
            # another key's response is "not found": a key continues only its own conversations
            stored = await self.store.get_response(previous_id, owner=owner_to_read(scope))
        except RelaystackError as exc:
            if exc.status_code != 404:
                raise
            raise InvalidRequestError(
                f"Previous response with id '{previous_id}' not found: it was not stored (store: false), was "
                "deleted, or is in another server's storage.",
                param="previous_response_id",
                code="previous_response_not_found",
            ) from None
        output = stored.response.get("output") or []
        return [*stored.input_items, *output], restored_messages(stored.messages, output)

    async def _json(self, prepared: _Prepared, ctx: RequestContext, send: Send) -> None:
        turn = ChatTurn()
        try:
            reply = await self.frontend.send_chat(prepared.chat_body, ctx)
            async for block in blocks_of(reply):
                turn.add_block(block)
        except RelaystackError as exc:
            await self.frontend.settle(ctx, exc.status_code, turn.usage)
            await send_error(send, exc)
            return
        status, incomplete = turn_status(turn)
        template = ResponseTemplate(new_response_id(), turn.created or now(), prepared.body)
        response = template.rendered(status, orjson.dumps(turn_output(turn)), usage=map_usage(turn.usage),
                                     incomplete=incomplete, service_tier=turn.service_tier)  # fmt: skip
        stored = await self._store(prepared, response, turn)
        await self.frontend.settle(ctx, 200, turn.usage)
        await send_raw_json(send, 200, response.json, ctx.answer_headers([] if stored else _STORE_FAILED))

    async def _stream(self, prepared: _Prepared, ctx: RequestContext, send: Send, scope: Scope) -> None:
        """Events as the upstream's blocks come, written as the chat route writes its streams
        (``StreamOut``: the head with the opening events, each block one writev), except the block
        that finishes the answer: its events go out with the closing ones, after the store, in one
        write (those last deltas wait for the commit, as ``response.completed`` does anyway)."""
        try:
            reply = await self.frontend.send_chat(prepared.chat_body, ctx)
        except RelaystackError as exc:  # nothing sent yet: the status passes through
            await self.frontend.settle(ctx, exc.status_code, None)
            await send_error(send, exc)
            return
        stream = ResponsesStream(new_response_id(), now(), prepared.body)
        out = StreamOut(send.raw if isinstance(send, TrackedSend) else send, scope, ctx, _sse_headers,
                        first_block_is_first_token=False)  # the opening events carry no token
        await out.block(stream.start())
        if isinstance(send, TrackedSend):
            send.started = True
        status = 200
        held: list[bytes] = []  # the events of the answer's last block: sent with the closing ones
        try:
            async for block in blocks_of(reply):
                data = stream.feed_block(block)
                if stream.turn.finish_reason is not None:
                    held.append(data)
                elif data:
                    out.first_token()
                    await out.block(data)
            last, response = stream.finish()
        except RelaystackError as exc:
            log.warning("Responses stream for model %s failed: %s", ctx.model, exc.message)
            status = exc.status_code
            last, response = stream.fail(exc)
        await self._store(prepared, response, stream.turn)
        await self.frontend.settle(ctx, status, stream.turn.usage)
        await out.end(b"".join(held), last)

    async def _store(self, prepared: _Prepared, response: RenderedResponse, turn: ChatTurn) -> bool:
        """Store and wait for the commit; False (and a log line) if that failed. The answer is sent
        anyway: withholding a generated answer would lose it for good."""
        if self.store is None or not prepared.body["store"]:
            return True
        messages = prepared.messages
        if response.status != "failed":
            messages = [*messages, stored_answer(turn)]
        try:
            await self.store.put_response(response, prepared.items, messages, owner=prepared.owner)
        except Exception as exc:
            COUNTERS.store_failures += 1
            telemetry().store_failure("response")
            log.error("Could not store response %s (answered, not stored): %s", response.id, exc)
            return False
        return True

    # -- the stored responses (Starlette) ---------------------------------------------------------
    def routes(self, prefixes: tuple[str, ...]) -> list[Route]:
        routes: list[Route] = []
        for prefix in prefixes:
            routes += [
                Route(f"{prefix}/responses", self.list_responses, methods=["GET"]),
                Route(f"{prefix}/responses/{{response_id}}", self.get_response, methods=["GET"]),
                Route(f"{prefix}/responses/{{response_id}}", self.delete_response, methods=["DELETE"]),
                Route(f"{prefix}/responses/{{response_id}}/input_items", self.list_input_items, methods=["GET"]),
                Route(f"{prefix}/responses/{{response_id}}/cancel", self.cancel_response, methods=["POST"]),
            ]
        return routes

    def _require_store(self) -> ResponseStore:
        if self.store is None:
            raise NotImplementedYetError(_NO_STORE)
        return self.store

    async def get_response(self, request: Request) -> Response:
        stored = await self._require_store().get_response(request.path_params["response_id"], owner=_reader(request))
        return json_response(stored.response)

    async def delete_response(self, request: Request) -> Response:
        response_id = request.path_params["response_id"]
        store = self._require_store()
        owner = _reader(request)
        if not await store.delete_response(response_id, owner=owner):
            await store.get_response(response_id, owner=owner)  # raises the store's 404
        return json_response({"id": response_id, "object": "response", "deleted": True})

    async def cancel_response(self, request: Request) -> Response:
        """Only a background response can be cancelled, and relaystack runs none: every stored
        response has finished, so this is a 409 (404 for an unknown id), as OpenAI answers."""
        stored = await self._require_store().get_response(request.path_params["response_id"], owner=_reader(request))
        raise ConflictError(
            f"Cannot cancel response '{stored.response['id']}': it is {stored.response.get('status')}; only "
            "background responses can be cancelled, and relaystack answers every response in its request.",
            code="response_not_cancellable",
        )

    async def list_responses(self, request: Request) -> Response:
        query = request.query_params
        page = await self._require_store().list_responses(
            after=query.get("after") or None, limit=_limit(query.get("limit")), model=query.get("model") or None,
            order=_order(query.get("order")), owner=_reader(request),
        )  # fmt: skip
        return json_response(page)

    async def list_input_items(self, request: Request) -> Response:
        stored = await self._require_store().get_response(request.path_params["response_id"], owner=_reader(request))
        query = request.query_params
        items = stored.input_items if _order(query.get("order")) == "asc" else stored.input_items[::-1]
        ids = [item.get("id") for item in items]
        start = 0
        for cursor, param in ((query.get("after"), "after"), (query.get("before"), "before")):
            if cursor and cursor not in ids:
                raise InvalidRequestError(f"Invalid '{param}': no input item with id '{cursor}'.", param=param)
        if query.get("after"):
            start = ids.index(query["after"]) + 1
        end = ids.index(query["before"]) if query.get("before") else len(items)
        limit = _limit(query.get("limit"))
        page = items[start:end][:limit]
        return json_response({
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": end - start > limit,
        })


def _sse_headers(ctx: RequestContext) -> list[tuple[bytes, bytes]]:
    return ctx.answer_headers(SSE_HEADERS)


def _limit(text: str | None) -> int:
    if text is None:
        return 20
    # ASCII digits only: str.isdigit() also takes '²' and '١', which int() then refuses (a 500)
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 100:
        raise InvalidRequestError("'limit' must be an integer from 1 to 100.", param="limit")
    return int(text)


def _order(text: str | None) -> Any:
    if text not in (None, "asc", "desc"):
        raise InvalidRequestError("'order' must be 'asc' or 'desc'.", param="order")
    return text or "desc"


def _reader(request: Request) -> str | None:
    return owner_to_read(request.scope)
