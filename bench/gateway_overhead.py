"""Micro-benchmark: what the gateway layer costs per chat request, with the real store (no HTTP).

Per request, what ``api/app.py`` and ``api/inference.py`` do around a JSON chat answer, at
``--conc`` requests in flight on one event loop:

  off      the gate of ``bench/configs/relaystack-off.yaml``: OpenGate, no /metrics; the
           completion stored (SQLite, group-committed)
  gateway  ``relaystack-gateway.yaml``'s: the guard (a cached virtual key), admit (limits: rpm,
           tpm, concurrency; a budget, with the request's estimated cost held), the usage row
           written with the completion (one write, one transaction), settle, the x-ratelimit-* headers (rendered as the
           lines relaystack's server appends to the head it writes, the other headers checked as
           uvicorn checks them), /metrics' tallies

CPU is the process's (the event loop and the store's writer thread); wall time is shown too.
The difference is the gateway layer's own cost per request; bench/run.py's
``--gateways relaystack-off,relaystack-gateway`` measures the same through HTTP.

    .venv/bin/python bench/gateway_overhead.py                  # 20k requests per case, 7 rounds
    .venv/bin/python bench/gateway_overhead.py --n 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE

from relaystack import telemetry
from relaystack.context import RequestContext
from relaystack.gateway.build import GatewayParts, build_gateway
from relaystack.gateway.keys import new_key
from relaystack.gateway.settings import AuthSettings, Limits, Price
from relaystack.storage.sqlite import SqliteStore

# this relaystack's store takes the usage row with the completion (before: a write of its own)
RIDES = getattr(SqliteStore, "commits_usage_with_completions", False)
ADMIN_KEY = "bench-admin-key-" + "0" * 24
MODEL, PROVIDER, PATH = "bench-chat", "up", "/v1/chat/completions"
USAGE = {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28}
MESSAGES = [{"role": "user", "content": "hi"}]
BODY = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"512")]


def completion(index: int) -> dict[str, Any]:
    return {"id": f"chatcmpl-{index}", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
            "usage": USAGE}


def encode_headers(headers: list[tuple[bytes, bytes]], lines: bytes | None = None) -> bytes:
    """What relaystack's server (uvicorn's httptools protocol, plus its head writer) does with
    each response header, and with the header lines the app rendered itself."""
    content = [b"HTTP/1.1 200 OK\r\n"]
    for name, value in headers:
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
            raise RuntimeError("invalid header")
        content.extend([name.lower(), b": ", value, b"\r\n"])
    if lines:
        content.append(lines)
    return b"".join(content)


class Case:
    def __init__(self, name: str, parts: GatewayParts, store: SqliteStore, token: str) -> None:
        self.name = name
        self.parts = parts
        self.store = store
        self.scope: MutableMapping[str, Any] = {
            "type": "http", "method": "POST", "path": PATH, "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"127.0.0.1:8321"), (b"authorization", b"Bearer " + token.encode()),
                        (b"content-type", b"application/json"), (b"content-length", b"90")],
        }
        self.ids = itertools.count()

    async def one(self) -> None:
        """One request, as the app's entry and the chat route do it (the upstream call left out)."""
        scope = dict(self.scope)
        guard = self.parts.guard
        if guard is not None and not guard.passes(scope):
            await guard.check(scope)
        gate = self.parts.gate
        ctx = RequestContext("chat")
        ctx.model = MODEL
        ctx.note_size(90, BODY)  # what the route notes: the budget holds an estimate from it
        await gate.admit(scope, ctx)
        ctx.provider_id, ctx.attempts = PROVIDER, 1
        data = completion(next(self.ids))
        ctx.status = 200
        ctx.usage = data["usage"]
        if RIDES:  # the usage row written with the completion, in one transaction
            usage = gate.begin_settle(ctx, True)
            await self.store.put_completion(data, MESSAGES, None, usage)
            await gate.settle(ctx, True)
        else:  # a relaystack from before: the usage write queued beside the completion's
            gate.begin_settle(ctx)
            await self.store.put_completion(data, MESSAGES)
            await gate.settle(ctx)
        limit_lines = getattr(ctx, "limit_lines", None)  # None: a relaystack from before them (pairs only)
        if limit_lines is not None:
            encode_headers([*JSON_HEADERS, *ctx.routing_headers()], limit_lines())
        else:
            encode_headers(ctx.answer_headers(list(JSON_HEADERS)))
        telemetry.current().request_done(PATH, ctx)

    async def run(self, n: int, conc: int) -> tuple[float, float]:
        """(CPU µs, wall µs) per request."""
        async def worker(count: int) -> None:
            for _ in range(count):
                await self.one()

        telemetry.install(self.parts.metrics or telemetry.Telemetry())
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
        done = n // conc * conc
        return (time.process_time() - cpu) / done * 1e6, (time.perf_counter() - wall) / done * 1e6


async def build(name: str, home: Path) -> Case:
    store = SqliteStore(home / name / "relaystack.db")
    await store.start()
    gateway = name == "gateway"
    parts = build_gateway(
        auth=AuthSettings(admin_key=ADMIN_KEY) if gateway else None, quota=None, cors=None, metrics=gateway,
        pricing={MODEL: Price(input_per_million=0.5, output_per_million=1.5)} if gateway else {},
        store=store, db_path=store.path, prefixes=("/v1", "/v1/openai/v1"),
        provider_of=lambda model: PROVIDER, is_local=lambda provider: False,
    )
    await parts.start()
    token = "none"
    if gateway:  # the bench's key: limits and a budget checked on every request, never reached
        key_id, token = new_key()
        assert parts.guard is not None and parts.guard.gate.auth is not None
        await store.put_key({"id": key_id, "secret_hash": parts.guard.gate.auth.hash(token), "name": "bench",
                             "limits": Limits(rpm=10**8, tpm=10**11, max_concurrent=10**4).model_dump(),
                             "budget": {"max_usd": 10**9, "period": "month"}, "created_at": int(time.time())})
    return Case(name, parts, store, token)


async def main(n: int, repeat: int, conc: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gateway-overhead-") as tmp:
        cases = [await build("off", Path(tmp)), await build("gateway", Path(tmp))]
        for case in cases:  # warm up: caches, the key, the budget's spend
            await case.run(min(n, 2000), conc)
        cpu: dict[str, list[float]] = {c.name: [] for c in cases}
        wall: dict[str, list[float]] = {c.name: [] for c in cases}
        for round_ in range(repeat):  # interleaved, order alternating: a neighbour hits both alike
            for case in cases if round_ % 2 == 0 else cases[::-1]:
                c, w = await case.run(n, conc)
                cpu[case.name].append(c)
                wall[case.name].append(w)
        for case in cases:
            await case.parts.stop()
            await case.store.stop()
    print(f"{'case':<8} {'CPU µs/req':>10} {'(min)':>7} {'wall µs/req':>11}   c={conc}, {n} requests x {repeat}")
    for name in cpu:
        print(f"{name:<8} {statistics.median(cpu[name]):>10.2f} {min(cpu[name]):>7.2f} "
              f"{statistics.median(wall[name]):>11.2f}")
    deltas = [g - o for g, o in zip(cpu["gateway"], cpu["off"], strict=True)]
    print(f"gateway - off: {statistics.median(deltas):+.2f} µs CPU per request (median of paired rounds)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--conc", type=int, default=16)
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args.n, args.repeat, args.conc))
