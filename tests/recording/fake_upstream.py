"""A tiny OpenAI-compatible upstream on 127.0.0.1 for the record-mode tests.

It answers chat (JSON and SSE), completions, embeddings and a Together-style bare-array
``/models``; ``state`` switches on the failure shapes the recorder must not write (error
status, a stream cut mid-way, a stream that ends before it finished, an in-band error event; a
finished stream without ``[DONE]``, as watsonx sends, is written), an echo
of every credential it received (raw, base64, URL-encoded) for the canary tests, and a gate
that holds the stream after its first chunk (to prove the recorder relays before buffering).
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
STREAM_WORDS = ["Hello", "!", " How", " can", " I", " help", "?"]
MODELS = [
    {"id": MODEL, "object": "model", "created": 0, "type": "chat", "display_name": "Llama 3.3 70B",
     "organization": "Meta", "context_length": 131072, "pricing": {"input": 0, "output": 0}},
    {"id": "togethercomputer/m2-bert-80M-32k-retrieval", "object": "model", "created": 0,
     "type": "embedding", "context_length": 32768},
]


@dataclass
class UpstreamState:
    fail_status: int | None = None
    cut_after: int | None = None  # drop the connection after N chunks
    no_done: bool = False
    # the body ends cleanly before the finishing chunk (and without [DONE])
    unfinished: bool = False
    inband_error: bool = False
    echo_credentials: bool = False
    models_envelope: bool = False
    hold_after_first: asyncio.Event | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)


def _credentials(request: web.Request) -> list[str]:
    names = ("Authorization", "api-key", "x-api-key", "X-LlamaStack-Provider-Data", "Cookie")
    found = [request.headers[n] for n in names if n in request.headers]
    found.extend(request.query.values())
    return found


def _echo(request: web.Request) -> str:
    """Every credential, in the encodings a careless upstream might reflect them in."""
    parts = []
    for value in _credentials(request):
        parts += [value, base64.b64encode(value.encode()).decode(), quote(value, safe="")]
        token = value.split(" ", 1)[-1]
        parts += [token, base64.b64encode(token.encode()).decode(), quote(token, safe="")]
    return " | ".join(parts)


def _content(body: dict[str, Any], request: web.Request, state: UpstreamState) -> str:
    messages = body.get("messages") or [{"content": body.get("prompt", "")}]
    text = f"echo: {messages[-1].get('content')}"
    if state.echo_credentials:
        text += " creds: " + _echo(request)
    return text


def chunk(words: str, *, finish: str | None = None, usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake-1", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": words}, "finish_reason": finish,
                     "logprobs": None}],
        "usage": usage,
    }


def build_app(state: UpstreamState) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.requests.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        if state.fail_status:
            return _error(state.fail_status, request, state)
        if body.get("stream"):
            return await _stream(request, body, state)
        content = _content(body, request, state)
        return web.json_response({
            "id": "chatcmpl-fake-0", "object": "chat.completion", "created": 1700000000, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            "system_fingerprint": _echo(request) if state.echo_credentials else None,
        })

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.requests.append({"path": request.path, "body": body})
        return web.json_response({
            "id": "cmpl-fake-0", "object": "text_completion", "created": 1700000000, "model": MODEL,
            "choices": [{"index": 0, "text": " blue.", "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        })

    async def embeddings(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.requests.append({"path": request.path, "body": body})
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.125]} for i in range(len(inputs))],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        })

    async def models(request: web.Request) -> web.StreamResponse:
        state.requests.append({"path": request.path, "body": None, "headers": dict(request.headers)})
        if state.fail_status:
            return _error(state.fail_status, request, state)
        listed = [dict(m) for m in MODELS]
        if state.echo_credentials:
            listed[0]["display_name"] = _echo(request)
        if state.models_envelope:
            return web.json_response({"object": "list", "data": listed})
        return web.json_response(listed)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    return app


def _error(status: int, request: web.Request, state: UpstreamState) -> web.Response:
    message = "Rate limited."
    if state.echo_credentials:
        message += " Incorrect API key provided: " + _echo(request)
    body = {"error": {"message": message, "type": "rate_limit_error", "code": None, "param": None}}
    return web.json_response(body, status=status, headers={"Retry-After": "1"})


async def _stream(request: web.Request, body: dict[str, Any], state: UpstreamState) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    words = list(STREAM_WORDS)
    if state.echo_credentials:
        words.append(" " + _content(body, request, state))
    events = [chunk(w) for w in words]
    if not state.unfinished:
        events.append(chunk("", finish="stop", usage={"prompt_tokens": 5, "completion_tokens": 7,
                                                      "total_tokens": 12}))
    for i, event in enumerate(events):
        if state.cut_after is not None and i == state.cut_after:
            assert request.transport is not None
            request.transport.close()  # a connection drop: no terminating chunk, no [DONE]
            return response
        if state.inband_error and i == 2:
            await response.write(b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n')
            break
        await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        if i == 0 and state.hold_after_first is not None:
            await state.hold_after_first.wait()
    if not (state.no_done or state.unfinished):
        await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def start(state: UpstreamState) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(build_app(state))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/v1"
