"""A fake Ollama server on 127.0.0.1: its native API and its OpenAI-compatible one, quirks included.

Like ``FakeTogether`` it runs an aiohttp app on its own loop in a daemon thread, records every
request (``.requests``) and takes one-shot faults (``fail_next``). What it imitates (Ollama's API
docs and OpenAI-compatibility page):

- native: ``GET /api/tags`` (the pulled models: ``name``, ``model``, ``details.family``...),
  ``GET /api/ps`` (the loaded ones), ``GET /api/version``; errors there are ``{"error": "..."}``;
- ``/v1``: ``GET /models``, ``POST /chat/completions`` (JSON and SSE, ``system_fingerprint``
  ``fp_ollama``, usage in a last chunk only with ``stream_options.include_usage``), ``POST
  /completions``, ``POST /embeddings``; errors in OpenAI's envelope; a model that is not pulled
  is a 404 "model ... not found, try pulling it first";
- no key: any ``Authorization`` (or none) is accepted;
- ``n`` is ignored (one choice); images must be base64 data URLs (older servers): a link or
  bad base64 is a 400 "invalid image input"; a ``gpt-oss`` model answers with ``reasoning``;
- ``GET /files/<name>`` serves what ``serve_file`` put there (images for download tests).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import threading
from collections import deque
from typing import Any

from aiohttp import web

from .fake_together import ReceivedRequest

__all__ = ["DEFAULT_PULLED", "FakeOllama"]

DEFAULT_PULLED = (
    ("llama3.2:3b-instruct-fp16", "llama", "3.2B"),
    ("llama3.2:latest", "llama", "3.2B"),
    ("llama3.2-vision:11b", "mllama", "10.7B"),
    ("gpt-oss:20b", "gptoss", "20.9B"),
    ("all-minilm:l6-v2", "bert", "23M"),
    ("nomic-embed-text:v1.5", "nomic-bert", "137M"),
)
_DIMENSIONS = {"all-minilm:l6-v2": 384, "nomic-embed-text:v1.5": 768}
_INVALID_IMAGE = "invalid image input"
_BODY = web.RequestKey("json_body", object)


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(body, status=status)


class FakeOllama:
    """See the module docstring. ``base_url`` is ``http://127.0.0.1:<port>/v1`` once started."""

    def __init__(self, pulled: tuple[tuple[str, str, str], ...] = DEFAULT_PULLED) -> None:
        self.pulled = list(pulled)
        self.running = [p[0] for p in pulled[:2]]
        self.requests: list[ReceivedRequest] = []
        self.files: dict[str, tuple[str, bytes]] = {}
        self._failures: deque[tuple[int, float | None, str | None]] = deque()
        self._cut_after: int | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ---------------------------------------------------------------------------
    @property
    def root(self) -> str:
        if not self.port:
            raise RuntimeError("FakeOllama is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def start(self) -> FakeOllama:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-ollama", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._astart(), self._loop).result(timeout=10)
        return self

    async def _astart(self) -> None:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port or 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    # ---- controls ----------------------------------------------------------------------------
    def serve_file(self, name: str, content_type: str, data: bytes) -> str:
        """Serve ``data`` at ``GET /files/<name>``; returns its URL."""
        self.files[name] = (content_type, data)
        return f"{self.root}/files/{name}"

    def fail_next(self, status: int, *, retry_after: float | None = None, path: str | None = None) -> None:
        """The next request (to ``path``, if given) answers ``status`` with Ollama's error body."""
        with self._lock:
            self._failures.append((status, retry_after, path))

    def cut_stream_after(self, chunks: int) -> None:
        """The next stream drops the connection after ``chunks`` events, without ``[DONE]``."""
        self._cut_after = chunks

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self._cut_after = None

    def received(self, path: str) -> list[ReceivedRequest]:
        return [r for r in self.requests if r.path == path]

    # ---- the app -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._faults])
        app.router.add_get("/api/tags", self._tags)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_get("/api/version", lambda r: _json({"version": "0.12.6"}))
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/files/{name}", self._file)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            received = ReceivedRequest(request.method, request.path, dict(request.query), headers, parsed, raw)
            self.requests.append(received)
        request[_BODY] = parsed
        return await handler(request)  # type: ignore[no-any-return]

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self._lock:
            failure = next((f for f in self._failures if f[2] in (None, request.path)), None)
            if failure is not None:
                self._failures.remove(failure)
        if failure is None:
            return await handler(request)  # type: ignore[no-any-return]
        status, retry_after, _ = failure
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        if request.path.startswith("/api/"):
            return web.json_response({"error": "server busy"}, status=status, headers=headers)
        body = {"error": {"message": "server busy, please try again.", "type": "api_error", "param": None,
                          "code": None}}
        return web.json_response(body, status=status, headers=headers)

    def _model_info(self, name: str, family: str, size: str) -> dict[str, Any]:
        return {
            "name": name, "model": name, "modified_at": "2025-10-01T12:00:00.000000-07:00", "size": 2019393189,
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": {"parent_model": "", "format": "gguf", "family": family, "families": [family],
                        "parameter_size": size, "quantization_level": "Q4_K_M"},
        }

    async def _tags(self, request: web.Request) -> web.Response:
        return _json({"models": [self._model_info(*p) for p in self.pulled]})

    async def _ps(self, request: web.Request) -> web.Response:
        loaded = [{**self._model_info(*p), "expires_at": "2025-10-01T12:05:00-07:00", "size_vram": 2019393189}
                  for p in self.pulled if p[0] in self.running]
        return _json({"models": loaded})

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": p[0], "object": "model", "created": 1759340000, "owned_by": "library"} for p in self.pulled]
        return _json({"object": "list", "data": data})

    async def _file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404, text="404: Not Found")
        return web.Response(body=found[1], content_type=found[0])

    def _check_model(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return _error(400, "model is required")
        names = {p[0] for p in self.pulled}
        if body["model"] not in names:
            return _error(404, f'model "{body["model"]}" not found, try pulling it first', "api_error")
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body: Any = request[_BODY]
        if (problem := self._check_model(body)) is not None:
            return problem
        text, images = _last_user(body.get("messages"))
        if images is None:
            return _error(400, _INVALID_IMAGE)
        model = body["model"]
        answer = f"You said: {text}" + (f" (and {images} image bytes)" if images else "")
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        if model.startswith("gpt-oss"):
            message["reasoning"] = f"The user wrote {len(text)} characters."
        tools = body.get("tools")
        if tools and body.get("tool_choice") != "none":
            name = tools[0]["function"]["name"]
            call = {"id": "call_fake1", "index": 0, "type": "function",
                    "function": {"name": name, "arguments": json.dumps({"city": "Tokyo"})}}
            message = {"role": "assistant", "content": "", "tool_calls": [call]}
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        words = len(answer.split())
        usage = {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words}
        if body.get("stream"):
            return await self._stream(request, _chat_chunks(model, message, finish, usage, body))
        return _json({
            "id": "chatcmpl-123", "object": "chat.completion", "created": 1759340000, "model": model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage,
        })

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body: Any = request[_BODY]
        if (problem := self._check_model(body)) is not None:
            return problem
        text = f"completed: {body.get('prompt')}"
        if body.get("stream"):
            chunks = [{"id": "cmpl-1", "object": "text_completion", "created": 1759340000, "model": body["model"],
                       "system_fingerprint": "fp_ollama",
                       "choices": [{"index": 0, "text": word, "finish_reason": None}]} for word in text.split(" ")]
            chunks[-1]["choices"][0]["finish_reason"] = "stop"
            return await self._stream(request, chunks)
        return _json({
            "id": "cmpl-1", "object": "text_completion", "created": 1759340000, "model": body["model"],
            "system_fingerprint": "fp_ollama", "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
        })

    async def _embeddings(self, request: web.Request) -> web.Response:
        body: Any = request[_BODY]
        if (problem := self._check_model(body)) is not None:
            return problem
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts:
            return _error(400, "invalid input type")
        dimension = _DIMENSIONS.get(body["model"], 16)
        data = [{"object": "embedding", "index": i, "embedding": _vector(t, dimension)} for i, t in enumerate(texts)]
        return _json({"object": "list", "data": data, "model": body["model"],
                      "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}})

    async def _stream(self, request: web.Request, chunks: list[dict[str, Any]]) -> web.StreamResponse:
        cut, self._cut_after = self._cut_after, None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for sent, chunk in enumerate(chunks):
            if cut is not None and sent >= cut and request.transport is not None:
                request.transport.abort()
                return response
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _vector(text: str, dimension: int) -> list[float]:
    return [round((len(text) + k) % 7 / 7, 4) for k in range(dimension)]


def _json(data: Any) -> web.Response:
    return web.json_response(data)


def _last_user(messages: Any) -> tuple[str, int | None]:
    """The last user message's text, and the bytes of its images (None: an image is not valid base64)."""
    text, images = "", 0
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        text, images = "", 0
        content = message.get("content")
        if isinstance(content, str):
            text = content
            continue
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "text":
                text += part.get("text", "")
            elif part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                head, _, data = url.partition(";base64,")
                if not head.startswith("data:image/") or not data:
                    return text, None
                try:
                    images += len(base64.b64decode(data, validate=True))
                except (binascii.Error, ValueError):
                    return text, None
    return text, images


def _chat_chunks(model: str, message: dict[str, Any], finish: str, usage: dict[str, Any],
                 body: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1759340000, "model": model,
            "system_fingerprint": "fp_ollama"}
    chunks: list[dict[str, Any]] = []
    if message.get("tool_calls"):
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "tool_calls": message["tool_calls"]}]
    else:
        words = message["content"].split(" ")
        deltas = [{"role": "assistant", "content": (" " if i else "") + w} for i, w in enumerate(words)]
    for delta in deltas:
        chunks.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks
