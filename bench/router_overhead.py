"""Micro-benchmark: what the router costs per request, with an in-process provider (no I/O).

Compares, per request on one event loop:
  seam         the router as it was before deployments (resolve, one call), inlined here
  plain        Router.send for a model without deployments and no routing: section (today's path)
  plain+gl     the same model with a global routing: section (routed as one deployment)
  2-deploy     Router.send for a model with two healthy deployments (priority)
  2-deploy-cd  two deployments, the first cooling down (skipped)
  stream-2d    two deployments, a 20-event stream read to its end (per request)

    .venv/bin/python bench/router_overhead.py                 # 200k requests per case, best of 5
    .venv/bin/python bench/router_overhead.py --n 50000 --repeat 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from relaystack.config import parse_config
from relaystack.context import RequestContext
from relaystack.providers.base import CallContext, JsonReply, Provider, Reply, StreamReply
from relaystack.registry import Registry
from relaystack.router import Router, RouterSettings

ANSWER = JsonReply({"id": "x", "object": "chat.completion", "choices": []})
EVENT = b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"delta":{"content":"t"}}]}\n\n'


class Instant(Provider):
    provider_type = "bench::instant"

    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        if body.get("stream"):
            return StreamReply(_events(20))
        return ANSWER


class Down(Provider):
    provider_type = "bench::down"

    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        from relaystack.errors import UpstreamConnectionError

        raise UpstreamConnectionError("refused")


async def _events(n: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield EVENT


def build(routing: dict[str, Any] | None) -> Router:
    providers: list[Provider] = [Instant("a"), Instant("b"), Down("down")]
    raw: dict[str, Any] = {
        "providers": {"inference": [{"provider_id": p.provider_id, "provider_type": "remote::openai-compat",
                                     "config": {"base_url": "http://127.0.0.1:9"}} for p in providers]},
        "models": [
            {"model_id": "plain", "provider_id": "a"},
            {"model_id": "two", "deployments": [{"provider_id": "a"}, {"provider_id": "b", "priority": 1}]},
            {"model_id": "two-cd", "routing": {"cooldown": {"failures": 1, "cooldown_s": 3600}},
             "deployments": [{"provider_id": "down"}, {"provider_id": "b", "priority": 1}]},
        ],
    }
    if routing is not None:
        raw["routing"] = routing
    config = parse_config(raw, env={})
    registry = Registry(providers)
    registry.add_config_models(config.models)
    return Router(registry, RouterSettings.from_config(config), rng=random.Random(1))


async def seam(router: Router, body: dict[str, Any], ctx: RequestContext) -> Reply:
    """The router's send() as it was on main before deployments."""
    provider, call = await router.registry.resolve_fresh(body["model"], "llm")
    call.provider_data = ctx.provider_data
    call.fault = ctx.fault
    ctx.model = body["model"]
    ctx.provider_id = provider.provider_id
    ctx.attempts += 1
    return await provider.chat_completion(body, call)


async def via_router(router: Router, body: dict[str, Any], ctx: RequestContext) -> Reply:
    return (await router.send("chat", body, ctx)).reply


async def via_router_stream(router: Router, body: dict[str, Any], ctx: RequestContext) -> Reply:
    reply = (await router.send("chat", body, ctx)).reply
    assert isinstance(reply, StreamReply)
    async for _ in reply.blocks:
        pass
    return reply


async def seam_stream(router: Router, body: dict[str, Any], ctx: RequestContext) -> Reply:
    reply = await seam(router, body, ctx)
    assert isinstance(reply, StreamReply)
    async for _ in reply.blocks:
        pass
    return reply


Case = Callable[[Router, dict[str, Any], RequestContext], Awaitable[Reply]]


async def per_request_us(case: Case, router: Router, model: str, n: int, *, stream: bool = False) -> float:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    for _ in range(min(n, 2000)):  # warm up (and open the cooldown of two-cd)
        await case(router, body, RequestContext("chat"))
    start = time.perf_counter()
    for _ in range(n):
        await case(router, body, RequestContext("chat"))
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int, repeat: int) -> None:
    plain, global_ = build(None), build({"retries": 1})
    cases: list[tuple[str, Case, Router, str, bool]] = [
        ("seam", seam, plain, "plain", False),
        ("plain", via_router, plain, "plain", False),
        ("plain+gl", via_router, global_, "plain", False),
        ("2-deploy", via_router, plain, "two", False),
        ("2-deploy-cd", via_router, plain, "two-cd", False),
        ("stream-seam", seam_stream, plain, "plain", True),
        ("stream-2d", via_router_stream, plain, "two", True),
    ]
    results: dict[str, list[float]] = {name: [] for name, *_ in cases}
    for _ in range(repeat):  # interleaved, so a noisy neighbour hits every case alike
        for name, case, router, model, stream in cases:
            results[name].append(await per_request_us(case, router, model, n, stream=stream))
    base = min(results["seam"])
    stream_base = min(results["stream-seam"])
    print(f"{'case':<12} {'best µs/req':>11} {'median':>8} {'+µs vs seam':>12}")
    for name, values in results.items():
        ref = stream_base if name.startswith("stream") else base
        print(f"{name:<12} {min(values):>11.2f} {statistics.median(values):>8.2f} {min(values) - ref:>+12.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args.n, args.repeat))
