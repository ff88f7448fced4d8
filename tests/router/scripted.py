"""An in-process provider whose answers a test scripts, and a router built around a few of them.

``Scripted`` answers each call with the next step of its script (or its ``default`` once the
script ran out) and counts what it was asked: calls, cancellations, the fault each call got.
Steps: ``ok()``, ``fail(status, retry_after=...)``, ``refuse()``, ``stall(s)`` (then ok),
``stream(n, ...)`` with ``stall_first=``, ``stall_after=(k, s)``, ``cut_after=k``.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from relaystack.config import parse_config
from relaystack.context import Operation, RequestContext
from relaystack.errors import UpstreamConnectionError, UpstreamError
from relaystack.providers.base import CallContext, JsonReply, Provider, Reply, StreamReply
from relaystack.registry import Registry
from relaystack.router import CooldownState, InProcessCooldowns, Router, RouterSettings
from relaystack.router.cooldown_shared import SharedCooldowns
from relaystack.state import LocalState

Step = Callable[["Scripted", CallContext], Awaitable[Reply]]


def ok() -> Step:
    async def step(provider: Scripted, call: CallContext) -> Reply:
        return JsonReply({"id": f"cmpl-{provider.provider_id}", "object": "chat.completion",
                          "model": call.requested_model, "served_by": provider.provider_id,
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                       "finish_reason": "stop"}]})
    return step


def fail(status: int, *, retry_after: float | None = None, code: str | None = None) -> Step:
    async def step(provider: Scripted, call: CallContext) -> Reply:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        raise UpstreamError(f"Provider '{provider.provider_id}' returned {status}: injected", status=status,
                            code=code, headers=headers)
    return step


def refuse() -> Step:
    async def step(provider: Scripted, call: CallContext) -> Reply:
        raise UpstreamConnectionError(f"Could not reach {provider.provider_id}: connection refused")
    return step


def stall(seconds: float) -> Step:
    async def step(provider: Scripted, call: CallContext) -> Reply:
        await provider.sleep(seconds)
        return await ok()(provider, call)
    return step


def event(provider_id: str, i: int, *, finish: bool = False) -> bytes:
    chunk = {"id": f"s-{provider_id}", "object": "chat.completion.chunk", "model": "m",
             "choices": [{"index": 0, "delta": {"content": f"t{i}"}, "finish_reason": "stop" if finish else None}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream(n: int = 3, *, stall_first: float | None = None, stall_after: tuple[int, float] | None = None,
           cut_after: int | None = None, hold: asyncio.Event | None = None) -> Step:
    """A stream of ``n`` events; ``hold``: wait for the event before finishing (keeps it open)."""
    async def step(provider: Scripted, call: CallContext) -> Reply:
        async def blocks() -> AsyncIterator[bytes]:
            provider.open_streams += 1
            try:
                for i in range(n):
                    if i == 0 and stall_first is not None:
                        await provider.sleep(stall_first)
                    if stall_after is not None and i == stall_after[0]:
                        await provider.sleep(stall_after[1])
                    if cut_after is not None and i == cut_after:
                        raise UpstreamConnectionError("The upstream connection broke mid-stream: cut")
                    if hold is not None and i == n - 1:
                        await hold.wait()
                    yield event(provider.provider_id, i, finish=i == n - 1)
                    provider.events_sent += 1
            finally:
                provider.open_streams -= 1
        return StreamReply(blocks())
    return step


class Scripted(Provider):
    provider_type = "test::scripted"

    def __init__(self, provider_id: str, *steps: Step, default: Step | None = None) -> None:
        super().__init__(provider_id)
        self.script: deque[Step] = deque(steps)
        self.default = default or ok()
        self.calls: list[CallContext] = []
        self.cancelled = 0
        self.open_streams = 0
        self.events_sent = 0

    def then(self, *steps: Step, default: Step | None = None) -> None:
        self.script.extend(steps)
        if default is not None:
            self.default = default

    async def sleep(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        self.calls.append(call)
        step = self.script.popleft() if self.script else self.default
        return await step(self, call)

    completion = chat_completion


class Clock:
    """Wall time for the cooldown state, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Rig:
    """A router over scripted providers, from a run.yaml dict, with a test clock and no real sleeps."""

    def __init__(self, config: dict[str, Any], *providers: Scripted, seed: int = 7, shared: bool = False) -> None:
        """``shared``: cooldowns kept by ``SharedCooldowns`` (on an in-process ``LocalState``: the
        Redis one behaves the same, tests/router/test_cooldown_shared.py)."""
        raw = {"providers": {"inference": [{"provider_id": p.provider_id, "provider_type": "remote::openai-compat",
                                            "config": {"base_url": "http://127.0.0.1:9"}} for p in providers]},
               **config}
        run = parse_config(raw, env={})
        self.providers = {p.provider_id: p for p in providers}
        self.registry = Registry(providers)
        self.registry.add_config_models(run.models)
        self.clock = Clock()
        self.state: CooldownState = (SharedCooldowns(LocalState(clock=self.clock), clock=self.clock) if shared
                                     else InProcessCooldowns(clock=self.clock))
        self.router = Router(self.registry, RouterSettings.from_config(run), state=self.state,
                             rng=random.Random(seed), clock=self.clock)
        self.waits: list[float] = []
        self.router.loop.sleep = self._sleep

    async def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def send(self, model: str = "m", *, stream: bool = False, operation: Operation = "chat",
                   **ctx_fields: Any) -> tuple[Reply, RequestContext]:
        ctx = RequestContext(operation, **ctx_fields)
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            body["stream"] = True
        routed = await self.router.send(operation, body, ctx)
        return routed.reply, ctx


def two_deployments(**routing: Any) -> dict[str, Any]:
    """Model ``m`` on ``primary`` (priority 0) and ``secondary`` (priority 1)."""
    return {"models": [{"model_id": "m", "model_type": "llm", "routing": routing or None,
                        "deployments": [{"provider_id": "primary", "provider_model_id": "up-m", "priority": 0},
                                        {"provider_id": "secondary", "provider_model_id": "up-m", "priority": 1}]}]}


async def drain(reply: Reply) -> list[bytes]:
    assert isinstance(reply, StreamReply)
    out = []
    try:
        async for block in reply.blocks:
            out.append(block)
    finally:
        aclose = getattr(reply.blocks, "aclose", None)
        if aclose is not None:
            await aclose()
        await reply.aclose()
    return out
