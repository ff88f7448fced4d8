"""Which PostgreSQL driver for the store: asyncpg or psycopg 3 (async, pooled)?

Measures what the store does per request, through each driver's own pool, at the same
concurrency, in the same run, interleaved: an upsert of one stored chat completion (the hot
path: one per chat request), the same for 16 rows in one statement (``batch``: what a
group-committing writer sends; rates and CPU are per row), a get by id, a page of 20 rows. Reports ops/s and the client
process's CPU time per op (the robust figure on a shared machine: the PostgreSQL server's CPU
is not in it and is the same for both drivers). Uses a throw-away database, dropped at the end.

    .venv/bin/python bench/pg_drivers.py                      # 3 rounds x 2000 ops per workload, c=16
    .venv/bin/python bench/pg_drivers.py --ops 5000 --rounds 5 --dsn postgresql://127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import psycopg_pool
import uvloop

SCHEMA = """
CREATE TABLE chat_completions (
    seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, created BIGINT NOT NULL, model TEXT NOT NULL,
    completion BYTEA NOT NULL, input_messages BYTEA NOT NULL
);
CREATE INDEX chat_completions_order ON chat_completions (created, seq);
"""
UPSERT = (
    "INSERT INTO chat_completions (id, created, model, completion, input_messages) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (id) DO UPDATE SET created = excluded.created, model = excluded.model, "
    "completion = excluded.completion, input_messages = excluded.input_messages"
)
GET = "SELECT completion, input_messages, model FROM chat_completions WHERE id = $1"
# the same upsert for BATCH rows in one statement (a group-committing writer would send this)
UPSERT_MANY = (
    "INSERT INTO chat_completions (id, created, model, completion, input_messages) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[], $5::bytea[]) "
    "ON CONFLICT (id) DO UPDATE SET created = excluded.created, model = excluded.model, "
    "completion = excluded.completion, input_messages = excluded.input_messages"
)
BATCH = 16
PAGE = "SELECT completion, input_messages, model FROM chat_completions ORDER BY created DESC, seq DESC LIMIT 21"

COMPLETION = orjson.dumps({
    "id": "x", "object": "chat.completion", "created": 1, "model": "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Waves fold into foam " * 12},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 41, "completion_tokens": 58, "total_tokens": 99},
})
MESSAGES = orjson.dumps([{"role": "user", "content": "Write a haiku about the sea, then explain it."}])

Op = Callable[[int], Awaitable[Any]]


def pct(sql: str) -> str:
    """psycopg's placeholders are %s, asyncpg's $n."""
    for n in range(5, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


def batch_args(name: str, i: int) -> tuple[list[Any], ...]:
    ids = range(10_000_000 + i * BATCH, 10_000_000 + (i + 1) * BATCH)
    return ([f"b-{name}-{j}" for j in ids], [1_700_000_000 + j for j in ids], ["m"] * BATCH,
            [COMPLETION] * BATCH, [MESSAGES] * BATCH)


class AsyncpgDriver:
    name = "asyncpg"

    async def open(self, dsn: str, size: int) -> None:
        self.pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size)

    async def close(self) -> None:
        await self.pool.close()

    async def upsert(self, i: int) -> None:
        await self.pool.execute(UPSERT, f"c-{self.name}-{i}", 1_700_000_000 + i, "m", COMPLETION, MESSAGES)

    async def batch(self, i: int) -> None:
        await self.pool.execute(UPSERT_MANY, *batch_args(self.name, i))

    async def get(self, i: int) -> Any:
        return await self.pool.fetchrow(GET, f"c-{self.name}-{i}")

    async def page(self, i: int) -> Any:
        return await self.pool.fetch(PAGE)


class PsycopgDriver:
    name = "psycopg"

    async def open(self, dsn: str, size: int) -> None:
        # prepare_threshold=0: every statement prepared server-side at once (the fastest psycopg setting)
        self.pool = psycopg_pool.AsyncConnectionPool(
            dsn, min_size=size, max_size=size, open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0},
        )
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()

    async def upsert(self, i: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(pct(UPSERT), (f"c-{self.name}-{i}", 1_700_000_000 + i, "m", COMPLETION, MESSAGES))

    async def batch(self, i: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(pct(UPSERT_MANY), batch_args(self.name, i))

    async def get(self, i: int) -> Any:
        async with self.pool.connection() as conn:
            cur = await conn.execute(pct(GET), (f"c-{self.name}-{i}",))
            return await cur.fetchone()

    async def page(self, i: int) -> Any:
        async with self.pool.connection() as conn:
            cur = await conn.execute(PAGE)
            return await cur.fetchall()


async def measure(op: Op, ops: int, concurrency: int, rows_per_op: int = 1) -> tuple[float, float]:
    """(rows per second, client CPU microseconds per row)."""
    counter = iter(range(ops))

    async def worker() -> None:
        for i in counter:
            await op(i)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return ops * rows_per_op / wall, cpu / (ops * rows_per_op) * 1e6


async def main(args: argparse.Namespace) -> None:
    name = "relaystack_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.dsn.rsplit("/", 1)[0] + "/" + name
    try:
        setup = await asyncpg.connect(dsn)
        await setup.execute(SCHEMA)
        await setup.close()
        drivers: list[AsyncpgDriver | PsycopgDriver] = [AsyncpgDriver(), PsycopgDriver()]
        for driver in drivers:
            await driver.open(dsn, args.pool)
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for rnd in range(args.rounds):
            order = drivers if rnd % 2 == 0 else drivers[::-1]
            for workload in ("upsert", "batch", "get", "page"):
                rows = BATCH if workload == "batch" else 1
                ops = args.ops // rows
                for driver in order:
                    op: Op = getattr(driver, workload)
                    await measure(op, min(200, ops), args.concurrency, rows)  # warm-up (and prepare)
                    results.setdefault((driver.name, workload), []).append(
                        await measure(op, ops, args.concurrency, rows))
        for driver in drivers:
            await driver.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(f"{args.rounds} rounds x {args.ops} ops, concurrency {args.concurrency}, pool {args.pool}, uvloop")
    print(f"{'driver':10} {'workload':8} {'rows/s (min..max)':>22} {'client CPU us/row (min..max)':>30}")
    for (driver_name, workload), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rates, cpus = [r for r, _ in runs], [c for _, c in runs]
        print(f"{driver_name:10} {workload:8} {statistics.median(rates):8.0f} ({min(rates):.0f}..{max(rates):.0f})"
              f" {statistics.median(cpus):12.1f} ({min(cpus):.1f}..{max(cpus):.1f})")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a database to CREATE DATABASE from")
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool", type=int, default=8)
    return parser.parse_args()


if __name__ == "__main__":
    uvloop.run(main(parse_args()))
