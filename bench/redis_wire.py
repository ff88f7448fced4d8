#!/usr/bin/env python3
"""Client CPU per limit check on Redis: redis-py's Script against ``state/redis_wire.py``.

    .venv/bin/python bench/redis_wire.py            # 5 rounds x 4000 admit+settle, c=1 and c=16

One ``RedisCounters`` admission (rpm, tpm and a concurrency slot, as bench's virtual key) and its
settle, the way the gateway runs them per request, in one process under uvloop; the script calls
go either through redis-py (``register_script``: EVALSHA on its pool) or through the lean
pipelined connection the gateway uses. Process CPU time per admit+settle, median of the rounds.
Needs Redis at $BENCH_REDIS_URL (default redis://127.0.0.1:6379/0); uses a throw-away key prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from relaystack.gateway.counters import Ask, Window
from relaystack.gateway.counters_redis import RedisCounters
from relaystack.state.redis import RedisState

REDIS_URL = __import__("os").environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ASK = Ask((Window("bench:rpm", 10**8, 60, "requests", "rpm"), Window("bench:tpm", 10**11, 60, "tokens", "tpm")),
          (("bench:concurrent", 10**4),))


class _ThroughRedisPy:
    """``RedisState.script`` as it was: redis-py's Script on the state's own client."""

    def __init__(self, state: RedisState) -> None:
        self._state = state

    def script(self, source: str) -> Callable[[list[str], list[Any]], Awaitable[Any]]:
        assert self._state._client is not None
        compiled = self._state._client.register_script(source)
        prefix = self._state.prefix + "x:"

        async def run(keys: list[str], args: list[Any]) -> Any:
            return await compiled(keys=[prefix + k for k in keys], args=args)

        return run


async def measure(counters: RedisCounters, conc: int, total: int) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await counters.admit(ASK)
            await counters.settle(((ASK.windows[1], 30),), ("bench:concurrent",))

    await worker(200)
    started = time.process_time()
    await asyncio.gather(*(worker(total // conc) for _ in range(conc)))
    return (time.process_time() - started) / total * 1e6


async def main(rounds: int, total: int) -> None:
    prefix = f"relaystack-bench-{secrets.token_hex(4)}:"
    state = RedisState(REDIS_URL, prefix=prefix)
    await state.start()
    try:
        ways = {"redis-py": RedisCounters(_ThroughRedisPy(state)), "redis_wire": RedisCounters(state)}
        for conc in (1, 16):
            results: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(rounds):
                for name, counters in ways.items():
                    results[name].append(await measure(counters, conc, total))
            line = ", ".join(f"{name} {statistics.median(v):.0f} us" for name, v in results.items())
            print(f"c={conc}: client CPU per admit+settle: {line}")
    finally:
        await state.stop()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    uvloop.run(main(args.rounds, args.requests))
