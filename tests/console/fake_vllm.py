"""A minimal vLLM-like (OpenAI-compatible) upstream on 127.0.0.1 that can fail or go away.

``mode`` is "up" (answers), or "failing" (503 for everything but the listing); ``stop()`` closes
the listening socket, so the next connection is refused: the provider becomes unreachable.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

from aiohttp import web

MODEL = "fake/tiny-chat"


class FakeVLLM:
    def __init__(self) -> None:
        self.mode = "up"
        self.chat_bodies: list[dict[str, object]] = []  # every chat request's body, in order
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeVLLM:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-vllm", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._astart(), self._loop).result(timeout=10)
        return self

    async def _astart(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": MODEL, "object": "model", "created": 1_700_000_000, "owned_by": "vllm", "max_model_len": 4096},
        ]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "failing":
            return web.json_response(
                {"error": {"message": "The server is overloaded.", "type": "service_unavailable", "code": 503}},
                status=503,
            )
        body = await request.json()
        self.chat_bodies.append(body)
        answer = "The fake upstream says hello."
        usage = {"prompt_tokens": 7, "completion_tokens": 6, "total_tokens": 13}
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            return web.json_response({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}]})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for word in answer.split(" "):
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        last = {**base, "object": "chat.completion.chunk", "usage": usage,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response
