"""A request is cancelled when its client goes: told by relaystack's server (no task per request),
or, under another ASGI server, by watching ``receive()``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relaystack.api.asgi import DISCONNECT_HOOKS
from relaystack.api.inference import DisconnectWatcher


async def never() -> dict[str, Any]:
    await asyncio.Event().wait()
    return {}


async def test_the_servers_hook_cancels_the_request_without_a_watching_task() -> None:
    scope: dict[str, Any] = {DISCONNECT_HOOKS: []}
    started = asyncio.Event()
    watchers: list[DisconnectWatcher] = []

    async def handler() -> None:
        watchers.append(DisconnectWatcher(never, scope))
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(handler())
    await started.wait()
    watcher = watchers[0]
    assert watcher._task is None and len(scope[DISCONNECT_HOOKS]) == 1
    send = object()
    assert watcher.wrap(send) is send  # type: ignore[arg-type]  # nothing to track: the server knows
    for hook in scope[DISCONNECT_HOOKS]:
        hook()  # what server/protocol.py does in connection_lost
    with pytest.raises(asyncio.CancelledError):
        await task
    assert watcher.disconnected


async def test_without_the_hook_a_task_watches_receive() -> None:
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    watchers: list[DisconnectWatcher] = []

    async def handler() -> None:
        watchers.append(DisconnectWatcher(receive, {}))
        await asyncio.sleep(10)

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    assert watchers[0]._task is not None
    gone.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert watchers[0].disconnected
