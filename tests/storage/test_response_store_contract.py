"""The ResponseStore part of the contract, run against SqliteStore, MemoryStore and PostgresStore alike (``store``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from relaystack.errors import InvalidRequestError, NotFoundError
from relaystack.storage.base import ResponseStore, Store
from relaystack.storage.memory import MemoryStore
from relaystack.storage.postgres import PgSettings, PostgresStore
from relaystack.storage.sqlite import SqliteStore

T0 = 1_700_000_000


def response(rid: str, created: int = T0, model: str = "m", text: str = "hi") -> dict[str, Any]:
    return {
        "id": rid, "object": "response", "created_at": created, "model": model, "status": "completed",
        "output": [{"type": "message", "id": f"msg_{rid}", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
    }  # fmt: skip


def items(text: str = "hello") -> list[dict[str, Any]]:
    return [{"type": "message", "role": "user", "content": text}]


def chat(text: str = "hello", answer: str = "hi") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]


def as_responses(store: Store) -> ResponseStore:
    assert isinstance(store, ResponseStore)
    return store


async def test_every_store_implements_the_response_part() -> None:
    assert isinstance(MemoryStore(), ResponseStore)
    assert isinstance(SqliteStore(Path("/nonexistent/never-opened.db")), ResponseStore)
    assert isinstance(PostgresStore(PgSettings("postgresql://never-opened/db")), ResponseStore)


async def test_a_stored_response_comes_back_with_its_items_and_messages(store: Store) -> None:
    responses = as_responses(store)
    await responses.put_response(response("resp_1", text="answer"), items("question"), chat("question", "answer"))
    got = await responses.get_response("resp_1")
    assert got.response == response("resp_1", text="answer")
    assert got.input_items == items("question")
    assert got.messages == chat("question", "answer")


async def test_a_stored_row_is_a_snapshot_of_the_callers_dicts(store: Store) -> None:
    responses = as_responses(store)
    body, given_items, messages = response("resp_1"), items(), chat()
    await responses.put_response(body, given_items, messages)
    body["status"] = "changed"
    given_items.append({"later": True})
    messages.clear()
    got = await responses.get_response("resp_1")
    assert (got.response["status"], len(got.input_items), len(got.messages)) == ("completed", 1, 2)


async def test_unknown_and_deleted_responses_are_404(store: Store) -> None:
    responses = as_responses(store)
    with pytest.raises(NotFoundError) as missing:
        await responses.get_response("resp_nope")
    assert missing.value.code == "response_not_found" and "resp_nope" in missing.value.message
    await responses.put_response(response("resp_1"), items(), chat())
    assert await responses.delete_response("resp_1") is True
    assert await responses.delete_response("resp_1") is False
    with pytest.raises(NotFoundError):
        await responses.get_response("resp_1")
    assert (await responses.list_responses())["data"] == []


async def test_replacing_an_id_keeps_its_position(store: Store) -> None:
    responses = as_responses(store)
    for rid in ("a", "b", "c"):
        await responses.put_response(response(rid), items(), chat())
    await responses.put_response(response("b", text="new"), items("new"), chat())
    page = await responses.list_responses(order="asc")
    assert [r["id"] for r in page["data"]] == ["a", "b", "c"]
    assert (await responses.get_response("b")).input_items == items("new")


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("model", [None, "x"])
@pytest.mark.parametrize("limit", [1, 4, 100])
async def test_paging_never_skips_nor_repeats_rows_of_the_same_second(
    store: Store, order: str, model: str | None, limit: int
) -> None:
    responses = as_responses(store)
    rng = random.Random(11)
    rows = [(f"resp_{i:02d}", T0 + (1 if i < 15 else rng.choice([0, 2])), rng.choice("xy")) for i in range(21)]
    rng.shuffle(rows)
    for rid, created, row_model in rows:
        await responses.put_response(response(rid, created, row_model), items(), chat())
    kept = [(created, seq, rid) for seq, (rid, created, m) in enumerate(rows) if model in (None, m)]
    kept.sort(reverse=order == "desc")
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await responses.list_responses(after=after, limit=limit, order=order, model=model)  # type: ignore[arg-type]
        ids = [r["id"] for r in page["data"]]
        assert page["first_id"] == (ids[0] if ids else "") and page["last_id"] == (ids[-1] if ids else "")
        seen.extend(ids)
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == [rid for _, _, rid in kept]


async def test_bad_cursor_and_limit_are_400(store: Store) -> None:
    responses = as_responses(store)
    with pytest.raises(InvalidRequestError) as unknown:
        await responses.list_responses(after="resp_unknown")
    assert unknown.value.param == "after"
    with pytest.raises(InvalidRequestError):
        await responses.list_responses(limit=0)


async def test_responses_and_chat_completions_do_not_mix(store: Store) -> None:
    await as_responses(store).put_response(response("resp_1"), items(), chat())
    assert (await store.list_completions())["data"] == []
    assert (await as_responses(store).list_responses())["data"][0]["id"] == "resp_1"


async def test_sqlite_keeps_responses_across_restarts(db_path: Path) -> None:
    first = SqliteStore(db_path)
    await first.start()
    await first.put_response(response("resp_1", text="kept"), items("q"), chat("q", "kept"))
    await first.stop()
    second = SqliteStore(db_path)
    await second.start()
    try:
        got = await second.get_response("resp_1")
        assert got.response["output"][0]["content"][0]["text"] == "kept"
        assert got.messages == chat("q", "kept")
    finally:
        await second.stop()


async def test_a_v1_database_is_migrated_and_keeps_its_completions(db_path: Path) -> None:
    import sqlite3

    from relaystack.storage._schema import MIGRATIONS, _statements

    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    for statement in _statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO chat_completions (id, created, model, completion, input_messages) VALUES (?, ?, ?, ?, ?)",
        ("c1", T0, "m", b'{"id":"c1","created":1700000000,"model":"m","choices":[]}', b"[]"),
    )
    conn.close()
    store = SqliteStore(db_path)
    await store.start()
    try:
        assert (await store.get_completion("c1"))["id"] == "c1"
        await store.put_response(response("resp_1"), items(), chat())
        assert (await store.get_response("resp_1")).response["id"] == "resp_1"
    finally:
        await store.stop()


async def test_a_v4_database_keeps_its_responses_order_and_drops_autoincrement(db_path: Path) -> None:
    """v5 copies the responses table without AUTOINCREMENT: every row, its seq and its owner kept;
    a new row is listed after them and writes no sqlite_sequence row."""
    import sqlite3

    from relaystack.storage._schema import MIGRATIONS, _statements

    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    for migration in MIGRATIONS[:4]:
        for statement in _statements(migration):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    insert = ("INSERT INTO responses (id, created, model, response, input_items, messages, owner) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)")
    for rid, owner in (("resp_old1", None), ("resp_old2", "key_a"), ("resp_old3", None)):
        conn.execute(insert, (rid, T0, "m", orjson.dumps(response(rid)), b"[]", b"[]", owner))
    conn.execute("DELETE FROM responses WHERE id = 'resp_old3'")  # its seq (3) stays in sqlite_sequence
    conn.close()
    store = SqliteStore(db_path)
    await store.start()
    try:
        await store.put_response(response("resp_new"), items(), chat())
        listed = await store.list_responses(order="asc")
        assert [r["id"] for r in listed["data"]] == ["resp_old1", "resp_old2", "resp_new"]
        assert [r["id"] for r in (await store.list_responses(owner="key_a"))["data"]] == ["resp_old2"]
        after = await store.list_responses(order="asc", after="resp_old1")
        assert [r["id"] for r in after["data"]] == ["resp_old2", "resp_new"]
    finally:
        await store.stop()
    conn = sqlite3.connect(db_path)
    table_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'responses'").fetchone()[0]
    assert "AUTOINCREMENT" not in table_sql
    assert conn.execute("SELECT count(*) FROM sqlite_sequence WHERE name = 'responses'").fetchone()[0] == 0
    seqs = dict(conn.execute("SELECT id, seq FROM responses").fetchall())
    assert seqs["resp_old1"] < seqs["resp_old2"] < seqs["resp_new"]
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'responses'")}
    assert {"responses_order", "responses_model_order"} <= indexes
    conn.close()


async def test_a_keys_responses_are_its_own(store: Store) -> None:
    """owner (server.auth on): another key's response is "not found" for every operation; no owner asked
    for (the admin key, or auth off) sees them all."""
    responses = as_responses(store)
    for rid, owner in (("resp_a1", "key_a"), ("resp_b1", "key_b"), ("resp_a2", "key_a"), ("resp_x", None)):
        await responses.put_response(response(rid), items(), chat(), owner=owner)
    assert (await responses.get_response("resp_a1", owner="key_a")).response["id"] == "resp_a1"
    with pytest.raises(NotFoundError):
        await responses.get_response("resp_a1", owner="key_b")
    with pytest.raises(NotFoundError):
        await responses.get_response("resp_x", owner="key_b")  # written with auth off: the admin's to see
    mine = await responses.list_responses(owner="key_a", order="asc")
    assert [r["id"] for r in mine["data"]] == ["resp_a1", "resp_a2"]
    first = await responses.list_responses(owner="key_a", order="asc", limit=1)
    assert [r["id"] for r in first["data"]] == ["resp_a1"] and first["has_more"] is True
    rest = await responses.list_responses(owner="key_a", order="asc", after="resp_a1")
    assert [r["id"] for r in rest["data"]] == ["resp_a2"] and rest["has_more"] is False
    with pytest.raises(InvalidRequestError):  # a cursor from another key's list is unknown here
        await responses.list_responses(owner="key_a", after="resp_b1")
    assert len((await responses.list_responses())["data"]) == 4
    assert await responses.delete_response("resp_a1", owner="key_b") is False
    assert (await responses.get_response("resp_a1")).response["id"] == "resp_a1"  # still there
    assert await responses.delete_response("resp_a1", owner="key_a") is True
