"""Micro-benchmark of the stored-completions write path (``SqliteStore.put_completion``).

What the hot path costs the event loop is what matters: the loop thread's CPU time
(``time.thread_time()`` on the loop thread) divided by the number of puts. The writer
thread's CPU is reported separately (process CPU minus loop-thread CPU).

    .venv/bin/python bench/store_bench.py                 # asyncio, concurrency 16, 20k puts
    .venv/bin/python bench/store_bench.py --uvloop --puts 50000 --synchronous FULL
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from relaystack.storage.sqlite import SqliteStore

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a haiku about the sea, then explain its structure in two sentences."},
]
ANSWER = (
    "Waves fold into foam,\nsalt wind carries gull voices,\nthe tide keeps its time.\n\n"
    "A haiku has three lines of five, seven and five syllables. This one moves from image to sound to "
    "rhythm, ending on the sea's own clock."
)


def make_completion(index: int, created: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-bench-{index:08d}",
        "object": "chat.completion",
        "created": created,
        "model": "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER, "tool_calls": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 41, "completion_tokens": 58, "total_tokens": 99},
        "system_fingerprint": None,
    }


async def run_puts(store: SqliteStore, puts: int, concurrency: int) -> tuple[float, float, float]:
    created = int(time.time())
    completions = [make_completion(i, created) for i in range(puts)]
    chunks = [completions[i::concurrency] for i in range(concurrency)]

    async def worker(chunk: list[dict[str, Any]]) -> None:
        put = store.put_completion
        for completion in chunk:
            await put(completion, MESSAGES)

    wall0, loop_cpu0, proc_cpu0 = time.perf_counter(), time.thread_time(), time.process_time()
    await asyncio.gather(*(worker(chunk) for chunk in chunks))
    wall = time.perf_counter() - wall0
    loop_cpu = time.thread_time() - loop_cpu0
    proc_cpu = time.process_time() - proc_cpu0
    return wall, loop_cpu, proc_cpu


def time_calls(fn: Callable[[], object], calls: int) -> float:
    """CPU µs per call of a synchronous function, on this thread."""
    cpu0 = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - cpu0) / calls * 1e6


async def time_versions(store: SqliteStore, rounds: int) -> tuple[float, float]:
    """models_version(): idle (nothing committed since the last call) and after a commit."""
    idle = time_calls(store.models_version, 20_000)
    after_commit: list[float] = []
    for index in range(rounds):
        await store.put_model({"identifier": f"bench-{index}", "provider_id": "bench"})
        cpu0 = time.thread_time()
        store.models_version()
        after_commit.append((time.thread_time() - cpu0) * 1e6)
    return idle, statistics.median(after_commit)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db", synchronous=args.synchronous)
        await store.start()
        await run_puts(store, min(2_000, args.puts), args.concurrency)  # warm-up (statement caches, WAL)
        wall, loop_cpu, proc_cpu = await run_puts(store, args.puts, args.concurrency)
        page_timer = _async_timer(lambda: store.list_completions(limit=20))
        page_wall = await page_timer(200)
        idle_us, after_commit_us = await time_versions(store, 200)
        await store.stop()
    sample = make_completion(0, 0)
    encode_us = time_calls(lambda: (orjson.dumps(sample), orjson.dumps(MESSAGES)), 50_000)
    n = args.puts
    print(f"loop={args.loop} synchronous={args.synchronous} concurrency={args.concurrency} puts={n}")
    print(f"  throughput           {n / wall:10.0f} puts/s  ({wall:.2f} s wall)")
    print(f"  event-loop CPU/put   {loop_cpu / n * 1e6:10.1f} µs   (of which orjson encode {encode_us:.1f} µs)")
    print(f"  writer-thread CPU/put{(proc_cpu - loop_cpu) / n * 1e6:10.1f} µs")
    print(f"  list_completions(20) {page_wall * 1e3:10.2f} ms wall per page")
    print(f"  models_version()     {idle_us:10.2f} µs CPU idle, {after_commit_us:.1f} µs after a commit")


def _async_timer(make: Callable[[], Awaitable[object]]) -> Callable[[int], Awaitable[float]]:
    async def timer(calls: int) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await make()
        return (time.perf_counter() - start) / calls

    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--puts", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (what uvicorn[standard] uses)")
    args = parser.parse_args()
    args.loop = "uvloop" if args.uvloop else "asyncio"
    if args.uvloop:
        import uvloop

        uvloop.run(main_async(args))
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
