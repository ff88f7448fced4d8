"""Stored responses on PostgreSQL beyond the shared contract: group commit with the chat
completions, acknowledgement after commit, several instances, migrating an older database,
refusing a database whose ``responses`` table is someone else's, and losing PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from store_helpers import completion, messages
from test_response_store_contract import chat, items, response

from relaystack.errors import ConfigError, RelaystackError
from relaystack.storage.postgres import PgSettings, PostgresStore, StoreUnavailableError
from relaystack.storage.postgres_completions import COMPLETIONS
from relaystack.storage.postgres_models import MODELS
from relaystack.storage.postgres_responses import RESPONSES
from relaystack.storage.postgres_schema import migrate
from support.tcp_proxy import TcpProxy
from support.waiting import eventually


def settings(dsn: str, **overrides: float) -> PgSettings:
    return PgSettings(dsn, pool_size=4, probe_interval_s=0.1, **overrides)  # type: ignore[arg-type]


async def raw(dsn: str, sql: str) -> list[asyncpg.Record]:
    """What another connection sees: committed rows only."""
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def test_concurrent_response_and_completion_puts_are_committed_when_acknowledged(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    puts = [pg_store.put_response(response(f"resp_{i}"), items(str(i)), chat(str(i))) for i in range(200)]
    puts += [pg_store.put_completion(completion(f"c-{i}"), messages()) for i in range(50)]
    await asyncio.gather(*puts)
    committed = await raw(pg_dsn, "SELECT id, input_items FROM responses ORDER BY seq")
    assert [row["id"] for row in committed] == [f"resp_{i}" for i in range(200)]  # arrival order: seq
    assert bytes(committed[7]["input_items"]) == b'[{"type":"message","role":"user","content":"7"}]'
    assert len(await raw(pg_dsn, "SELECT id FROM chat_completions")) == 50
    page = await pg_store.list_responses(order="asc", limit=200)
    assert [r["id"] for r in page["data"]] == [f"resp_{i}" for i in range(200)] and not page["has_more"]


async def test_one_bad_response_fails_alone_and_its_batch_mates_are_committed(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    good = [pg_store.put_response(response(f"ok-{i}"), items(), chat()) for i in range(10)]
    bad = pg_store.put_response(response("nul", model="bad\x00model"), items(), chat())  # TEXT refuses NUL
    mates = [pg_store.put_completion(completion(f"c-{i}"), messages()) for i in range(5)]
    results = await asyncio.gather(*good, bad, *mates, return_exceptions=True)
    error = results[10]
    assert isinstance(error, RelaystackError) and error.status_code == 500
    assert "nul" not in error.message and "INSERT" not in error.message
    assert [r for i, r in enumerate(results) if i != 10] == [None] * 15
    assert {row["id"] for row in await raw(pg_dsn, "SELECT id FROM responses")} == {f"ok-{i}" for i in range(10)}
    assert len(await raw(pg_dsn, "SELECT id FROM chat_completions")) == 5


async def test_stop_commits_queued_responses(pg_dsn: str) -> None:
    store = PostgresStore(settings(pg_dsn))
    await store.start()
    tasks = [asyncio.create_task(store.put_response(response(f"q-{i}"), items(), chat())) for i in range(100)]
    await asyncio.sleep(0)
    await store.stop()
    assert await asyncio.gather(*tasks) == [None] * 100
    assert len(await raw(pg_dsn, "SELECT id FROM responses")) == 100


async def test_a_response_stored_through_one_instance_is_read_and_deleted_through_another(pg_dsn: str) -> None:
    one, two = PostgresStore(settings(pg_dsn)), PostgresStore(settings(pg_dsn))
    await asyncio.gather(one.start(), two.start())
    try:
        await one.put_response(response("resp_shared", text="kept"), items("q"), chat("q", "kept"))
        got = await two.get_response("resp_shared")
        assert got.input_items == items("q") and got.messages == chat("q", "kept")
        await two.put_response(response("resp_next", created=1_700_000_001), items("q2"), chat("q2"))
        assert [r["id"] for r in (await one.list_responses())["data"]] == ["resp_next", "resp_shared"]
        assert await two.delete_response("resp_shared") is True
        assert await one.delete_response("resp_shared") is False
        with pytest.raises(RelaystackError) as gone:
            await one.get_response("resp_shared")
        assert gone.value.status_code == 404 and gone.value.code == "response_not_found"
    finally:
        await asyncio.gather(one.stop(), two.stop())


async def test_a_database_without_the_responses_group_is_migrated_and_keeps_its_completions(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await migrate(conn, (COMPLETIONS, MODELS), "test")  # what the first PostgreSQL relaystack made
        await conn.execute(
            "INSERT INTO chat_completions (id, created, model, completion, input_messages) VALUES ($1, $2, $3, $4, $5)",
            "c1", 1_700_000_000, "m", b'{"id":"c1","created":1700000000,"model":"m","choices":[]}', b"[]",
        )
    finally:
        await conn.close()
    store = PostgresStore(settings(pg_dsn))
    await store.start()
    try:
        assert (await store.get_completion("c1"))["id"] == "c1"
        await store.put_response(response("resp_1"), items(), chat())
        assert (await store.get_response("resp_1")).response["id"] == "resp_1"
    finally:
        await store.stop()
    versions = dict(await raw(pg_dsn, "SELECT table_group, version FROM relaystack_schema"))
    assert versions == {"chat_completions": 1, "models": 1, "responses": RESPONSES.version, "keys": 1}


async def test_a_responses_table_relaystack_did_not_create_is_refused_with_the_fix(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:  # llama-stack's agents keep a table named "responses"
        await conn.execute("CREATE TABLE responses (id TEXT PRIMARY KEY, response_object JSONB)")
        await conn.execute("INSERT INTO responses VALUES ('theirs', '{}')")
    finally:
        await conn.close()
    with pytest.raises(ConfigError) as caught:
        await PostgresStore(settings(pg_dsn)).start()
    message = str(caught.value)
    assert 'a table or index "responses"' in message and "relaystack did not create" in message
    assert "CREATE DATABASE relaystack" in message and "storage.dsn" in message
    assert [row["id"] for row in await raw(pg_dsn, "SELECT id FROM responses")] == ["theirs"]  # untouched
    assert await raw(pg_dsn, "SELECT to_regclass('chat_completions') AS t") == [(None,)]  # rolled back whole


async def test_losing_postgres_gives_503_for_responses_then_recovers(pg_dsn: str) -> None:
    proxy = TcpProxy("127.0.0.1", int(pg_dsn.split(":")[-1].split("/")[0]))
    await proxy.start()
    dsn = pg_dsn.replace(f":{proxy.target[1]}/", f":{proxy.port}/")
    store = PostgresStore(settings(dsn, connect_timeout_s=1.0, command_timeout_s=2.0))
    await store.start()
    try:
        await store.put_response(response("before"), items(), chat())
        await proxy.cut()
        for attempt in range(3):  # the first may meet a dead connection; all must be 503s
            with pytest.raises(StoreUnavailableError):
                await asyncio.wait_for(store.put_response(response(f"during-{attempt}"), items(), chat()), 10)
        for read in (store.get_response("before"), store.list_responses(), store.delete_response("before")):
            with pytest.raises(StoreUnavailableError):
                await asyncio.wait_for(read, 10)
        await proxy.start()
        assert await eventually(lambda: store.health().ok, 15)
        await store.put_response(response("after", created=1_700_000_001), items(), chat())
        assert [r["id"] for r in (await store.list_responses())["data"]] == ["after", "before"]
    finally:
        await store.stop()
        await proxy.cut()
