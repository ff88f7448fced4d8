"""PostgresStore's keys and usage beyond the contract: several instances, batching, an outage.

The contract itself runs in test_key_store_contract.py (``store`` fixture, every backend).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from relaystack.storage.base import UsageRow
from relaystack.storage.postgres import PgSettings, PostgresStore, StoreUnavailableError
from support.tcp_proxy import TcpProxy
from support.waiting import eventually


def settings(dsn: str, **overrides: float) -> PgSettings:
    return PgSettings(dsn, pool_size=4, probe_interval_s=0.1, **overrides)  # type: ignore[arg-type]


def key(key_id: str, **extra: object) -> dict[str, object]:
    return {"id": key_id, "secret_hash": "cd" * 32, **extra}


async def test_a_key_change_reaches_another_instance_through_the_monitor(pg_dsn: str) -> None:
    one, two = PostgresStore(settings(pg_dsn)), PostgresStore(settings(pg_dsn))
    await one.start()
    await two.start()
    try:
        seen, models_seen = two.keys_version(), two.models_version()
        await one.put_key(key("key-a"))
        assert one.keys_version() != seen  # the writer knows at once
        assert await eventually(lambda: two.keys_version() == one.keys_version(), 5)
        assert two.models_version() == models_seen  # a key write is not a model change
        assert await two.get_key("key-a") == key("key-a")
        await two.put_key(key("key-a", revoked_at=1))
        assert await eventually(lambda: one.keys_version() == two.keys_version(), 5)
        assert (await one.get_key("key-a"))["revoked_at"] == 1  # type: ignore[index]
    finally:
        await one.stop()
        await two.stop()


async def test_a_broadcast_version_is_taken_at_once_and_never_goes_back(pg_store: PostgresStore) -> None:
    await pg_store.put_key(key("key-b"))
    now = pg_store.keys_version()
    pg_store.observe_keys_version(now + 5)
    assert pg_store.keys_version() == now + 5
    pg_store.observe_keys_version(now)  # stale news
    assert pg_store.keys_version() == now + 5


async def test_a_batch_of_usage_rows_of_one_day_key_model_adds_up_in_one_statement(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    rows = [UsageRow("2026-03-01", "k", "m", "p", 1, i, 1, 0, 0.5) for i in range(200)]
    await asyncio.gather(*(pg_store.add_usage([row]) for row in rows))
    await pg_store.add_usage(rows[:2])  # one call, two rows of one id
    conn = await asyncpg.connect(pg_dsn)
    try:
        stored = await conn.fetch("SELECT requests, prompt_tokens, completion_tokens, cost FROM usage_daily")
    finally:
        await conn.close()
    assert [tuple(r) for r in stored] == [(202, sum(range(200)) + 1, 202, 101.0)]


async def test_key_reads_and_usage_writes_get_503_while_postgres_is_away(pg_dsn: str) -> None:
    proxy = TcpProxy("127.0.0.1", int(pg_dsn.split(":")[-1].split("/")[0]))
    await proxy.start()
    dsn = pg_dsn.replace(f":{proxy.target[1]}/", f":{proxy.port}/")
    store = PostgresStore(settings(dsn, connect_timeout_s=1.0, command_timeout_s=2.0))
    await store.start()
    try:
        await store.put_key(key("key-c"))
        await proxy.cut()
        for attempt in range(2):
            with pytest.raises(StoreUnavailableError) as caught:
                await asyncio.wait_for(store.get_key("key-c"), 10)
            assert caught.value.status_code == 503, attempt
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(store.add_usage([UsageRow("2026-03-02", "k", "m", "p", 1, 1, 1, 0, 0.0)]), 10)
        await proxy.start()
        assert await eventually(lambda: store.health().ok, 15)
        assert await store.get_key("key-c") == key("key-c")
    finally:
        await store.stop()
        await proxy.cut()


async def test_no_secret_is_stored_only_its_hash(pg_store: PostgresStore, pg_dsn: str) -> None:
    """The gateway hands the store records with ``secret_hash``; the rows hold exactly that."""
    await pg_store.put_key(key("key-d", name="n"))
    conn = await asyncpg.connect(pg_dsn)
    try:
        blob = await conn.fetchval("SELECT record FROM api_keys WHERE id = 'key-d'")
    finally:
        await conn.close()
    assert b"rsk-" not in blob and b'"secret_hash":"' + b"cd" * 32 + b'"' in blob
