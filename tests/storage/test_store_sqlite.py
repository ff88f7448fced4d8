"""SqliteStore specifics: the file, group commit, acknowledgement after commit, errors, lifecycle."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from store_helpers import completion, messages, page_through

import relaystack.storage.sqlite as sqlite_module
from relaystack.errors import ConfigError, RelaystackError, ServiceUnavailableError
from relaystack.storage._schema import SCHEMA_VERSION
from relaystack.storage.sqlite import SqliteStore, StoreClosedError


def raw_ids(db_path: Path) -> set[str]:
    """What another connection sees on disk, independent of the store under test."""
    with sqlite3.connect(db_path) as conn:
        return {cid for (cid,) in conn.execute("SELECT id FROM chat_completions")}


async def test_start_creates_the_directory_in_wal_mode_with_a_schema_version(db_path: Path) -> None:
    assert not db_path.parent.exists()
    store = SqliteStore(db_path)
    await store.start()
    try:
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
    finally:
        await store.stop()


async def test_500_concurrent_puts_are_committed_when_acknowledged(sqlite_store: SqliteStore, db_path: Path) -> None:
    ids = [f"c-{index}" for index in range(500)]
    await asyncio.gather(*(sqlite_store.put_completion(completion(cid), messages(cid)) for cid in ids))
    assert raw_ids(db_path) == set(ids)  # another connection sees them: they are committed
    listed = await page_through(sqlite_store, limit=100, order="asc")
    assert listed == ids  # same second: insertion order


async def test_stop_flushes_queued_writes(db_path: Path) -> None:
    store = SqliteStore(db_path)
    await store.start()
    tasks = [asyncio.create_task(store.put_completion(completion(f"q-{i}"), messages())) for i in range(300)]
    await asyncio.sleep(0)  # every task ran up to its await: its write is queued
    await store.stop()
    assert await asyncio.gather(*tasks) == [None] * 300
    assert raw_ids(db_path) == {f"q-{i}" for i in range(300)}


async def test_writes_and_reads_after_stop_raise_store_closed(db_path: Path) -> None:
    store = SqliteStore(db_path)
    await store.start()
    await store.put_model({"identifier": "m"})
    version = store.models_version()
    await store.stop()
    await store.stop()  # idempotent
    for call in (
        store.put_completion(completion("late"), messages()),
        store.put_model({"identifier": "late"}),
        store.delete_model("m"),
        store.list_completions(),
        store.get_completion("x"),
        store.load_models(),
    ):
        with pytest.raises(StoreClosedError) as caught:
            await call
        assert "stopped" in caught.value.message
        assert caught.value.status_code == 503
    assert store.models_version() == version  # a poller racing shutdown does not crash
    assert raw_ids(db_path) == set()


async def test_a_store_that_is_not_started_says_so(db_path: Path) -> None:
    store = SqliteStore(db_path)
    with pytest.raises(StoreClosedError, match="not started"):
        await store.put_completion(completion("x"), messages())
    with pytest.raises(StoreClosedError, match="not started"):
        store.models_version()


async def test_start_twice_is_a_programming_error(sqlite_store: SqliteStore) -> None:
    with pytest.raises(RuntimeError, match="twice"):
        await sqlite_store.start()


async def test_a_store_used_after_fork_refuses_writes(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_forks_seen", sqlite_module._forks_seen + 1)  # as a fork does
    with pytest.raises(StoreClosedError, match="another process"):
        await sqlite_store.put_completion(completion("x"), messages())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_is_counted_in_the_child_only() -> None:
    before = sqlite_module._forks_seen
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports what it sees and leaves at once
        os.write(write_end, str(sqlite_module._forks_seen).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end) as pipe:
        assert int(pipe.read()) == before + 1
    assert sqlite_module._forks_seen == before


async def test_reopening_keeps_completions_and_models(db_path: Path) -> None:
    first = SqliteStore(db_path)
    await first.start()
    await first.put_completion(completion("kept", text="persisted"), messages("q"))
    await first.put_model({"identifier": "p/kept"})
    await first.stop()
    second = SqliteStore(db_path)
    await second.start()
    try:
        assert (await second.get_completion("kept"))["choices"][0]["message"]["content"] == "persisted"
        assert await second.load_models() == [{"identifier": "p/kept"}]
        assert second.models_version() == 1
    finally:
        await second.stop()


async def test_one_bad_write_fails_alone_and_its_batch_mates_are_committed(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    good = [sqlite_store.put_completion(completion(f"ok-{i}"), messages()) for i in range(20)]
    bad = sqlite_store.put_completion(completion("too-big", created=2**63), messages())  # JSON ok, SQLite not
    results = await asyncio.gather(*good[:10], bad, *good[10:], return_exceptions=True)
    assert results[:10] == [None] * 10 and results[11:] == [None] * 10
    error = results[10]
    assert isinstance(error, RelaystackError) and error.status_code == 500
    assert "too-big" not in error.message and "Traceback" not in error.message
    assert raw_ids(db_path) == {f"ok-{i}" for i in range(20)}


async def test_a_database_locked_past_the_busy_timeout_gives_503_then_recovers(db_path: Path) -> None:
    store = SqliteStore(db_path, busy_timeout_s=0.1)
    await store.start()
    try:
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        with pytest.raises(ServiceUnavailableError, match="locked"):
            await store.put_completion(completion("blocked"), messages())
        # reads are not blocked by a writer in WAL mode
        assert (await store.list_completions())["data"] == []
        blocker.execute("ROLLBACK")
        blocker.close()
        await store.put_completion(completion("after"), messages())
        assert raw_ids(db_path) == {"after"}
    finally:
        await store.stop()


async def test_a_cancelled_put_is_still_written(sqlite_store: SqliteStore) -> None:
    task = asyncio.create_task(sqlite_store.put_completion(completion("cancelled"), messages()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await sqlite_store.put_completion(completion("next"), messages())  # same FIFO writer: after the first
    assert (await sqlite_store.get_completion("cancelled"))["id"] == "cancelled"


async def test_models_version_sees_a_commit_from_another_connection(sqlite_store: SqliteStore, db_path: Path) -> None:
    before = sqlite_store.models_version()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'models_version'")
    assert sqlite_store.models_version() == before + 1


async def test_a_file_from_a_newer_relaystack_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match="newer than this relaystack"):
        await SqliteStore(db_path).start()


def write_garbage(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite" * 100)


async def test_a_file_that_is_not_a_database_is_refused_naming_it(db_path: Path) -> None:
    write_garbage(db_path)
    with pytest.raises(ConfigError) as caught:
        await SqliteStore(db_path).start()
    assert str(db_path) in str(caught.value) and "storage.db_path" in str(caught.value)


async def test_an_unusable_directory_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="storage directory"):
        await SqliteStore(blocker / "sub" / "relaystack.db").start()


def test_many_workers_opening_a_new_file_at_once_all_get_wal(tmp_path: Path) -> None:
    """Workers starting together race to switch a new file to WAL; SQLite answers the loser "database
    is locked" at once (no busy wait: it would deadlock), which must be retried, not fail start-up."""
    import threading

    from relaystack.storage._schema import connect, migrate

    failures: list[BaseException] = []
    for round_number in range(20):
        path = tmp_path / f"race-{round_number}.db"
        barrier = threading.Barrier(12)

        def open_it(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                conn = connect(path, busy_timeout_s=5, synchronous="NORMAL")
                migrate(conn, path)
                conn.close()
            except BaseException as exc:  # collected and asserted below
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
