"""PostgresStore specifics: migrations under concurrent start-up, acknowledgement after commit,
several instances on one database, SIGKILL durability, and losing PostgreSQL mid-run.

The contract itself runs in test_store_contract.py / test_store_streams.py (``store`` fixture).
"""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest
from store_helpers import completion, messages, page_through
from test_store_processes import run_child, spawn

from relaystack.config import StorageConfig
from relaystack.errors import ConfigError, RelaystackError
from relaystack.storage.postgres import GROUPS, PgSettings, PostgresStore, StoreUnavailableError
from relaystack.storage.postgres_base import describe_dsn
from support.backends import reset_database
from support.tcp_proxy import TcpProxy
from support.waiting import eventually


async def raw_ids(dsn: str) -> set[str]:
    """What another connection sees: committed rows only."""
    conn = await asyncpg.connect(dsn)
    try:
        return {row[0] for row in await conn.fetch("SELECT id FROM chat_completions")}
    finally:
        await conn.close()


def settings(dsn: str, **overrides: float) -> PgSettings:
    return PgSettings(dsn, pool_size=4, probe_interval_s=0.1, **overrides)  # type: ignore[arg-type]


async def test_instances_starting_at_once_migrate_once(pg_dsn: str) -> None:
    stores = [PostgresStore(settings(pg_dsn)) for _ in range(4)]
    await asyncio.gather(*(store.start() for store in stores))
    try:
        conn = await asyncpg.connect(pg_dsn)
        versions = dict(await conn.fetch("SELECT table_group, version FROM relaystack_schema"))
        await conn.close()
        assert versions == {group.name: group.version for group in GROUPS}
        await asyncio.gather(*(store.put_completion(completion(f"s{i}"), messages()) for i, store in enumerate(stores)))
        assert len((await stores[0].list_completions())["data"]) == 4
    finally:
        await asyncio.gather(*(store.stop() for store in stores))


async def test_a_database_from_a_newer_relaystack_is_refused_naming_the_group(pg_dsn: str) -> None:
    store = PostgresStore(settings(pg_dsn))
    await store.start()
    await store.stop()
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute("UPDATE relaystack_schema SET version = version + 1 WHERE table_group = 'models'")
    await conn.close()
    with pytest.raises(ConfigError, match=r"table group 'models'.*newer than this relaystack"):
        await PostgresStore(settings(pg_dsn)).start()


async def test_500_concurrent_puts_are_committed_when_acknowledged(pg_store: PostgresStore, pg_dsn: str) -> None:
    ids = [f"c-{index}" for index in range(500)]
    await asyncio.gather(*(pg_store.put_completion(completion(cid), messages(cid)) for cid in ids))
    assert await raw_ids(pg_dsn) == set(ids)
    assert await page_through(pg_store, limit=100, order="asc") == ids  # same second: insertion order


async def test_one_bad_write_fails_alone_and_its_batch_mates_are_committed(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    good = [pg_store.put_completion(completion(f"ok-{i}"), messages()) for i in range(20)]
    bad = pg_store.put_completion(completion("nul", model="bad\x00model"), messages())  # PostgreSQL TEXT refuses NUL
    results = await asyncio.gather(*good[:10], bad, *good[10:], return_exceptions=True)
    assert results[:10] == [None] * 10 and results[11:] == [None] * 10
    error = results[10]
    assert isinstance(error, RelaystackError) and error.status_code == 500
    assert "nul" not in error.message and "INSERT" not in error.message
    assert await raw_ids(pg_dsn) == {f"ok-{i}" for i in range(20)}


async def test_the_same_id_twice_in_one_batch_keeps_the_last_content(pg_store: PostgresStore) -> None:
    await asyncio.gather(pg_store.put_completion(completion("a", text="1"), messages()),
                         pg_store.put_completion(completion("b"), messages()),
                         pg_store.put_completion(completion("a", text="2"), messages()))
    page = await pg_store.list_completions(order="asc")
    assert [item["id"] for item in page["data"]] == ["a", "b"]
    assert page["data"][0]["choices"][0]["message"]["content"] == "2"


async def test_stop_commits_queued_writes(pg_dsn: str) -> None:
    store = PostgresStore(settings(pg_dsn))
    await store.start()
    tasks = [asyncio.create_task(store.put_completion(completion(f"q-{i}"), messages())) for i in range(300)]
    await asyncio.sleep(0)
    await store.stop()
    assert await asyncio.gather(*tasks) == [None] * 300
    assert await raw_ids(pg_dsn) == {f"q-{i}" for i in range(300)}


async def test_registrations_reach_another_instance_within_a_second(pg_dsn: str) -> None:
    one, two = PostgresStore(settings(pg_dsn)), PostgresStore(settings(pg_dsn))
    await one.start()
    await two.start()
    try:
        before = two.models_version()
        await one.put_model({"identifier": "p/shared"})
        assert await eventually(lambda: two.models_version() != before, 5)
        assert two.models_version() == one.models_version() != before
        assert await two.load_models() == [{"identifier": "p/shared"}]
        await one.put_completion(completion("from-one"), messages())
        assert (await two.get_completion("from-one"))["id"] == "from-one"
    finally:
        await one.stop()
        await two.stop()


async def test_models_and_completions_are_shared_with_another_process(pg_store: PostgresStore, pg_dsn: str) -> None:
    child_version = int(await run_child("models-put", pg_dsn, "child/m"))
    assert [m["identifier"] for m in await pg_store.load_models()] == ["child/m"]
    assert child_version >= 1
    assert await run_child("put-many", pg_dsn, "other", "50") == "done 50\n"
    assert len(await page_through(pg_store, limit=20, order="desc")) == 50


async def test_every_acknowledged_put_survives_sigkill(pg_dsn: str) -> None:
    await reset_database(pg_dsn)
    proc = await spawn("put-until-killed", pg_dsn, "400")
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    acked = out.decode().split()
    assert len(acked) >= 400
    missing = set(acked) - await raw_ids(pg_dsn)
    assert not missing, f"{len(missing)} acknowledged completions lost, e.g. {sorted(missing)[:5]}"


async def test_losing_postgres_gives_503_at_once_then_recovers_by_itself(pg_dsn: str) -> None:
    proxy = TcpProxy("127.0.0.1", int(pg_dsn.split(":")[-1].split("/")[0]))
    await proxy.start()
    dsn = pg_dsn.replace(f":{proxy.target[1]}/", f":{proxy.port}/")
    store = PostgresStore(settings(dsn, connect_timeout_s=1.0, command_timeout_s=2.0))
    await store.start()
    try:
        await store.put_completion(completion("before"), messages())
        assert store.health().ok
        await proxy.cut()
        for attempt in range(3):  # the first may meet a dead pooled connection; all must be 503s
            with pytest.raises(StoreUnavailableError) as caught:
                await asyncio.wait_for(store.put_completion(completion(f"during-{attempt}"), messages()), 10)
            assert caught.value.status_code == 503 and caught.value.code == "store_unavailable"
            assert caught.value.headers.get("Retry-After") == "1"
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(store.list_completions(), 10)
        health = store.health()
        assert not health.ok and health.to_dict()["status"] == "unavailable"
        assert "@" not in str(health.to_dict())  # no credentials in health
        await proxy.start()
        assert await eventually(lambda: store.health().ok, 15)
        await store.put_completion(completion("after"), messages())  # the pool's dead connections were replaced
        assert {item["id"] for item in (await store.list_completions())["data"]} == {"before", "after"}
    finally:
        await store.stop()
        await proxy.cut()


async def test_start_waits_for_postgres_then_fails_with_a_clear_message() -> None:
    started = time.monotonic()
    store = PostgresStore(PgSettings("postgresql://u:secret@127.0.0.1:9/db", start_timeout_s=0.5))
    with pytest.raises(ConfigError) as caught:
        await store.start()
    assert "127.0.0.1:9/db" in str(caught.value) and "RELAYSTACK_POSTGRES_DSN" in str(caught.value)
    assert "secret" not in str(caught.value)
    assert time.monotonic() - started < 30


def test_dsn_descriptions_hold_no_credentials() -> None:
    assert describe_dsn("postgresql://user:pw@db.example:6543/relay?sslmode=require") == "db.example:6543/relay"
    assert describe_dsn("host=db port=5433 dbname=x user=u password=pw") == "db:5433/x"


def test_the_postgres_backend_needs_a_dsn() -> None:
    config = StorageConfig(backend="postgres")
    with pytest.raises(ConfigError, match="RELAYSTACK_POSTGRES_DSN"):
        config.resolved_dsn({})
    assert config.resolved_dsn({"RELAYSTACK_POSTGRES_DSN": "postgresql://h/d"}) == "postgresql://h/d"


async def test_several_writers_commit_everything_and_keep_one_ids_puts_in_order(pg_dsn: str) -> None:
    store = PostgresStore(PgSettings(pg_dsn, pool_size=4, probe_interval_s=0.1, writers=3))
    await store.start()
    try:
        puts = [store.put_completion(completion(f"w-{i}"), messages()) for i in range(300)]
        puts += [store.put_completion(completion("same", text=str(n)), messages()) for n in range(50)]
        await asyncio.gather(*puts)
        assert await raw_ids(pg_dsn) == {f"w-{i}" for i in range(300)} | {"same"}
        assert (await store.get_completion("same"))["choices"][0]["message"]["content"] == "49"
    finally:
        await store.stop()
