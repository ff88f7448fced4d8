"""Key changes broadcast through Redis: another instance takes the new keys_version at once,
without waiting for its PostgreSQL monitor (set here to a minute, so only the broadcast can tell)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relaystack.gateway.build import share_key_changes
from relaystack.state.redis import RedisState
from relaystack.storage.postgres import PgSettings, PostgresStore
from relaystack.storage.sqlite import SqliteStore
from support.backends import REDIS_URL, delete_redis_prefix, new_redis_prefix, redis_or_skip, throwaway_database
from support.waiting import eventually


@pytest.fixture
async def two_instances() -> AsyncIterator[list[tuple[PostgresStore, RedisState]]]:
    redis_or_skip()
    prefix = new_redis_prefix()
    with throwaway_database() as dsn:
        made = []
        for _ in range(2):
            store = PostgresStore(PgSettings(dsn, pool_size=2, probe_interval_s=60))
            state = RedisState(REDIS_URL, prefix=prefix)
            await store.start()
            await state.start()
            made.append((store, state))
        try:
            yield made
        finally:
            for store, state in made:
                await state.stop()
                await store.stop()
            delete_redis_prefix(prefix)


async def test_a_key_change_reaches_the_other_instance_through_redis(
    two_instances: list[tuple[PostgresStore, RedisState]],
) -> None:
    (one_store, one_state), (two_store, two_state) = two_instances
    announce = share_key_changes(one_store, one_state)
    assert announce is not None and share_key_changes(two_store, two_state) is not None
    before = two_store.keys_version()
    await one_store.put_key({"id": "key-x", "secret_hash": "00" * 32})
    await announce()
    assert await eventually(lambda: two_store.keys_version() == one_store.keys_version() != before, 1.0)


async def test_sqlite_needs_no_broadcast(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    store = SqliteStore(tmp_path / "r.db")
    assert share_key_changes(store, RedisState("redis://unused:6379/0")) is None
