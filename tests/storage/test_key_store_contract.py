"""The KeyStore part of the store contract (virtual keys, usage totals), against every backend."""

from __future__ import annotations

import asyncio

from relaystack.storage.base import KeyStore, Store, UsageRow


def as_keys(store: Store) -> KeyStore:
    assert isinstance(store, KeyStore)
    return store


def key(key_id: str, **extra: object) -> dict[str, object]:
    return {"id": key_id, "name": f"name-{key_id}", "secret_hash": "ab" * 32, **extra}


async def test_sqlite_and_memory_implement_the_key_store() -> None:
    from pathlib import Path

    from relaystack.storage.memory import MemoryStore
    from relaystack.storage.sqlite import SqliteStore

    assert isinstance(MemoryStore(), KeyStore)
    assert isinstance(SqliteStore(Path("/nonexistent/never-opened.db")), KeyStore)


async def test_put_get_list_keys_in_creation_order(store: Store) -> None:
    store = as_keys(store)
    assert await store.get_key("k1") is None
    assert await store.list_keys() == []
    for key_id in ("k2", "k1", "k3"):
        await store.put_key(key(key_id))
    assert await store.get_key("k1") == key("k1")
    assert [k["id"] for k in await store.list_keys()] == ["k2", "k1", "k3"]


async def test_put_replaces_in_place_and_bumps_the_version(store: Store) -> None:
    store = as_keys(store)
    before = store.keys_version()
    await store.put_key(key("k1"))
    await store.put_key(key("k2"))
    after_create = store.keys_version()
    assert after_create != before
    await store.put_key(key("k1", revoked_at=1_700_000_000))
    assert store.keys_version() not in (before, after_create)
    assert (await store.get_key("k1")) == key("k1", revoked_at=1_700_000_000)
    assert [k["id"] for k in await store.list_keys()] == ["k1", "k2"]  # position kept


async def test_a_stored_key_is_a_snapshot(store: Store) -> None:
    store = as_keys(store)
    record = key("k1", models=["a"])
    await store.put_key(record)
    record["models"].append("b")  # type: ignore[attr-defined]
    assert (await store.get_key("k1"))["models"] == ["a"]  # type: ignore[index]


async def test_usage_adds_up_per_day_key_model_provider(store: Store) -> None:
    store = as_keys(store)
    rows = [
        UsageRow("2026-01-01", "k1", "m", "p", 1, 10, 5, 0, 0.5),
        UsageRow("2026-01-01", "k1", "m", "p", 1, 7, 3, 2, 0.25),
        UsageRow("2026-01-01", "k2", "m", "p", 1, 1, 1, 0, 0.0),
        UsageRow("2026-01-02", "k1", "m", "p", 1, 4, 4, 0, 0.125),
        UsageRow("2026-01-02", "k1", "m2", "p2", 1, 100, 0, 0, 0.0),
    ]
    await asyncio.gather(*(store.add_usage([row]) for row in rows[:3]), store.add_usage(rows[3:]))  # concurrent
    totals = await store.usage_totals(since="2026-01-01", until="2026-12-31")
    assert totals == [
        UsageRow("2026-01-01", "k1", "m", "p", 2, 17, 8, 2, 0.75),
        UsageRow("2026-01-01", "k2", "m", "p", 1, 1, 1, 0, 0.0),
        UsageRow("2026-01-02", "k1", "m", "p", 1, 4, 4, 0, 0.125),
        UsageRow("2026-01-02", "k1", "m2", "p2", 1, 100, 0, 0, 0.0),
    ]
    assert [r.day for r in await store.usage_totals(since="2026-01-02", until="2026-01-02")] == ["2026-01-02"] * 2
    only_k2 = await store.usage_totals(since="2026-01-01", until="2026-01-31", key_id="k2")
    assert only_k2 == [UsageRow("2026-01-01", "k2", "m", "p", 1, 1, 1, 0, 0.0)]
    assert await store.usage_totals(since="2025-01-01", until="2025-12-31") == []


async def test_many_concurrent_usage_writes_lose_nothing(store: Store) -> None:
    store = as_keys(store)
    await asyncio.gather(*(
        store.add_usage([UsageRow("2026-02-03", f"k{i % 3}", "m", "p", 1, i, 2 * i, 0, i / 1000)])
        for i in range(300)
    ))
    totals = await store.usage_totals(since="2026-02-03", until="2026-02-03")
    assert sum(r.requests for r in totals) == 300
    assert sum(r.prompt_tokens for r in totals) == sum(range(300))
    assert sum(r.completion_tokens for r in totals) == 2 * sum(range(300))
    assert abs(sum(r.cost for r in totals) - sum(range(300)) / 1000) < 1e-9


async def test_another_connection_sees_a_key_change_at_once(db_path: object) -> None:
    """Two SqliteStores on one file stand for two worker processes: the version check is how a
    revoked key fails at once everywhere."""
    from pathlib import Path

    from relaystack.storage.sqlite import SqliteStore

    assert isinstance(db_path, Path)
    first, second = SqliteStore(db_path), SqliteStore(db_path)
    await first.start()
    await second.start()
    try:
        seen = second.keys_version()
        models_seen = second.models_version()
        await first.put_key(key("k1"))
        assert second.keys_version() != seen
        assert second.models_version() == models_seen  # a key write is not a model change
        assert await second.get_key("k1") == key("k1")
        seen = second.keys_version()
        await first.put_model({"identifier": "m1"})
        assert second.models_version() != models_seen
        assert second.keys_version() == seen
    finally:
        await first.stop()
        await second.stop()
