"""Under relaystack's server, a front-end request starts no task to watch for a disconnect.

A watcher task per request ended cancelled, and under relaystack's server its CancelledError's
traceback held the task's frames, and with them the request's objects, in a reference cycle:
~25 objects a request (seen with gc.DEBUG_SAVEALL on a live server), freed only by the garbage
collector's passes, which under load stall every request in flight. The server calls a hook in
the request's scope when the client goes away, as the chat route already used; the front-ends
now use it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest

from relaystack.api.asgi import DISCONNECT_HOOKS
from support.inprocess import in_process_app

MODEL = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
MODELS = [{"model_id": MODEL, "provider_id": "together",
           "provider_model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"}]
REQUESTS = {
    "/v1/messages": {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": MODEL, "input": "hi", "store": False},
}


class _LikeRelaystacksServer:
    """What relaystack's server does that httpx's ASGI transport does not: a list for disconnect
    hooks in every request's scope, and a ``receive()`` that, once the body is read, answers only
    when the client goes away (which it does not, here)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = False

        async def until_disconnect() -> Any:
            nonlocal body_read
            if body_read:
                await asyncio.Event().wait()
            message = await receive()
            body_read = not message.get("more_body", False)
            return message

        await self.app({**scope, DISCONNECT_HOOKS: []}, until_disconnect, send)


@pytest.mark.parametrize("path", sorted(REQUESTS))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_front_end_requests_start_no_watcher_task(path: str, stream: bool) -> None:
    started: list[str] = []
    loop = asyncio.get_running_loop()

    def counting_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        started.append(getattr(coro, "__qualname__", type(coro).__name__))
        return asyncio.Task(coro, loop=loop, **kwargs)

    async with in_process_app(MODELS) as (app, _):
        transport = httpx.ASGITransport(app=_LikeRelaystacksServer(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://relaystack.test") as client:
            loop.set_task_factory(counting_factory)
            try:
                for _ in range(5):
                    response = await client.post(path, json={**REQUESTS[path], "stream": stream})
                    assert response.status_code == 200, response.text
            finally:
                loop.set_task_factory(None)
    assert not [name for name in started if "DisconnectWatcher" in name], started
