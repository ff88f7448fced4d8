"""A stored completion and the usage of the request that made it are one write: committed
together or not at all (SQLite, memory); PostgreSQL writes them side by side and returns once
both committed."""

from __future__ import annotations

import asyncio

from store_helpers import completion, messages

from relaystack.errors import RelaystackError
from relaystack.storage.base import KeyStore, Store, UsageRow
from relaystack.storage.memory import MemoryStore
from relaystack.storage.postgres import PostgresStore
from relaystack.storage.sqlite import SqliteStore

DAY = "2026-03-01"


def usage(key_id: str = "k", prompt: int = 10) -> UsageRow:
    return UsageRow(DAY, key_id, "m", "p", 1, prompt, 5, 0, 0.5)


async def totals(store: Store) -> list[tuple[str, int, int]]:
    assert isinstance(store, KeyStore)
    return [(r.key_id, r.requests, r.prompt_tokens) for r in await store.usage_totals(since=DAY, until=DAY)]


async def stored_ids(store: Store) -> set[str]:
    return {item["id"] for item in (await store.list_completions(limit=100))["data"]}


async def test_completions_and_their_usage_commit_together(store: Store) -> None:
    await asyncio.gather(
        *(store.put_completion(completion(f"c-{i}"), messages(), None, usage(f"k{i % 2}")) for i in range(10)),
        store.put_stream("s-1", 1_700_000_000, "m", b'data: {"id":"s-1"}\n\n', messages(), usage("k0")),
        store.put_completion(completion("plain"), messages()),  # no usage: as before
    )
    assert await stored_ids(store) == {f"c-{i}" for i in range(10)} | {"s-1", "plain"}
    assert await totals(store) == [("k0", 6, 60), ("k1", 5, 50)]


def test_which_stores_commit_usage_in_the_completions_transaction() -> None:
    assert SqliteStore.commits_usage_with_completions and MemoryStore.commits_usage_with_completions
    assert not PostgresStore.commits_usage_with_completions  # one group statement per row kind


async def test_sqlite_a_completion_that_fails_takes_its_usage_with_it(sqlite_store: SqliteStore) -> None:
    """Neither: the completion's row fails (created out of SQLite's range), so its usage is not
    written; its batch mates, completions and usage, are."""
    good = [sqlite_store.put_completion(completion(f"ok-{i}"), messages(), None, usage()) for i in range(10)]
    bad = sqlite_store.put_completion(completion("too-big", created=2**63), messages(), None, usage("bad"))
    results = await asyncio.gather(*good[:5], bad, *good[5:], return_exceptions=True)
    assert results[:5] == [None] * 5 and results[6:] == [None] * 5
    assert isinstance(results[5], RelaystackError) and results[5].status_code == 500
    assert await stored_ids(sqlite_store) == {f"ok-{i}" for i in range(10)}
    assert await totals(sqlite_store) == [("k", 10, 100)]


async def test_sqlite_usage_that_fails_takes_its_completion_with_it(sqlite_store: SqliteStore) -> None:
    """Neither, the other way round: a usage row SQLite refuses (a count out of range) fails
    its completion too; the batch's other usage rows, merged into one upsert, are written."""
    good = [sqlite_store.put_completion(completion(f"ok-{i}"), messages(), None, usage()) for i in range(10)]
    bad = sqlite_store.put_completion(completion("huge-usage"), messages(), None, usage("k", prompt=2**63))
    results = await asyncio.gather(*good[:5], bad, *good[5:], return_exceptions=True)
    assert results[:5] == [None] * 5 and results[6:] == [None] * 5
    assert isinstance(results[5], RelaystackError)
    assert await stored_ids(sqlite_store) == {f"ok-{i}" for i in range(10)}
    assert await totals(sqlite_store) == [("k", 10, 100)]


async def test_sqlite_one_usage_upsert_per_key_for_a_batch(sqlite_store: SqliteStore) -> None:
    assert sqlite_store._writer is not None
    statements: list[str] = []
    sqlite_store._writer._conn.set_trace_callback(statements.append)  # the writer thread's connection
    await asyncio.gather(*(sqlite_store.put_completion(completion(f"c-{i}"), messages(), None, usage())
                           for i in range(50)))
    sqlite_store._writer._conn.set_trace_callback(None)
    assert sum("INSERT INTO chat_completions" in s for s in statements) == 50
    assert sum("INSERT INTO usage_daily" in s for s in statements) < 50  # merged per batch
    assert await totals(sqlite_store) == [("k", 50, 500)]
