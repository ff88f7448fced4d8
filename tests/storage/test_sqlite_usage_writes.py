"""SQLite's usage writes: the rows of every request that settles while a write waits for the
writer thread join that write (merged per day, key, model and provider), and each caller still
gets a future of its own, resolved once its rows committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relaystack.storage._common import StoreClosedError
from relaystack.storage.base import UsageRow
from relaystack.storage.sqlite import SqliteStore

DAY = "2026-03-01"


async def test_rows_of_one_turn_are_one_statement_and_every_caller_is_answered(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "usage.db")
    await store.start()
    try:
        assert store._writer is not None
        statements: list[str] = []
        store._writer._conn.set_trace_callback(statements.append)  # the writer thread's connection
        futures = [store.add_usage((UsageRow(DAY, f"k{i % 2}", "m", "p", 1, 10, 5, 2, 0.25),)) for i in range(100)]
        assert len({id(f) for f in futures}) == 100  # a future per caller
        cancelled = futures[::10]
        for future in cancelled:
            future.cancel()  # a caller going away cancels only its own future...
        await asyncio.gather(*(f for f in futures if f not in cancelled))
        store._writer._conn.set_trace_callback(None)
        totals = await store.usage_totals(since=DAY, until=DAY)
        # ...and its rows are written anyway: once accepted, usage is never lost
        assert [(r.key_id, r.requests, r.prompt_tokens, r.completion_tokens, r.cached_tokens) for r in totals] == [
            ("k0", 50, 500, 250, 100), ("k1", 50, 500, 250, 100)]
        assert sum(r.cost for r in totals) == pytest.approx(25.0)
        assert sum("INSERT INTO usage_daily" in s for s in statements) == 2  # one per (key), not one per request
    finally:
        await store.stop()


async def test_rows_arriving_while_the_writer_is_busy_commit_in_a_later_write(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "usage.db")
    await store.start()
    try:
        async def one(index: int) -> None:
            for _ in range(20):  # each waits for its commit, then adds again: writes overlap the writer's work
                await store.add_usage((UsageRow(DAY, "k", "m", "p", 1, index, 0, 0, 0.0),))

        await asyncio.gather(*(one(i) for i in range(16)))
        (total,) = await store.usage_totals(since=DAY, until=DAY)
        assert total.requests == 16 * 20 and total.prompt_tokens == 20 * sum(range(16))
    finally:
        await store.stop()


async def test_a_stopped_store_refuses_usage_at_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "usage.db")
    await store.start()
    await store.stop()
    with pytest.raises(StoreClosedError):
        store.add_usage((UsageRow(DAY, "k", "m", "p"),))
    assert store._usage_write is None  # nothing half-made left for the next caller


def test_callers_on_two_event_loops_each_get_their_own_answers(tmp_path: Path) -> None:
    """A write is merged only among callers of one loop: each future is resolved on its own loop."""
    import threading

    store = SqliteStore(tmp_path / "usage.db")
    asyncio.run(store.start())

    async def many(key: str) -> None:
        for _ in range(10):
            await asyncio.gather(*(store.add_usage((UsageRow(DAY, key, "m", "p", 1, 1, 0, 0, 0.0),))
                                   for _ in range(20)))

    errors: list[BaseException] = []

    def in_a_thread(key: str) -> None:
        try:
            asyncio.run(many(key))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=in_a_thread, args=(f"k{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        totals = asyncio.run(store.usage_totals(since=DAY, until=DAY))
        assert [(r.key_id, r.requests) for r in totals] == [("k0", 200), ("k1", 200)]
    finally:
        asyncio.run(store.stop())
