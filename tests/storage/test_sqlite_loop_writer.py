"""SQLite writes commit on the event loop, one transaction per loop turn; the writer thread only
takes over while another connection holds the write lock; checkpoints run on their own thread."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
from store_helpers import completion, messages

from relaystack.storage import _loop_writer
from relaystack.storage._loop_writer import CHECKPOINT_EVERY_S
from relaystack.storage.sqlite import SqliteStore


def file_size(path: Path) -> int:
    return path.stat().st_size


def grows_past(path: Path, size: int, timeout_s: float) -> bool:
    """Whether the file outgrows ``size`` within the timeout (the checkpointer is a thread of its own)."""
    deadline = time.monotonic() + timeout_s
    while path.stat().st_size <= size:
        if time.monotonic() > deadline:
            return False
        time.sleep(CHECKPOINT_EVERY_S / 4)
    return True


def nice_once_changed(thread: int, start: int, timeout_s: float) -> int:
    """The thread's nice value once it moved from ``start`` (it lowers its own priority as it starts)."""
    deadline = time.monotonic() + timeout_s
    while (nice := os.getpriority(os.PRIO_PROCESS, thread)) == start and time.monotonic() < deadline:
        time.sleep(0.01)
    return nice


def seqs(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        return dict(conn.execute("SELECT id, seq FROM chat_completions"))


async def test_a_turns_writes_are_one_transaction_committed_on_the_loop(sqlite_store: SqliteStore) -> None:
    assert sqlite_store._writer is not None
    threads: list[tuple[str, int]] = []
    conn = sqlite_store._writer._conn
    conn.set_trace_callback(lambda statement: threads.append((statement, threading.get_ident())))
    await asyncio.gather(*(sqlite_store.put_completion(completion(f"c-{i}"), messages()) for i in range(50)))
    conn.set_trace_callback(None)
    begins = [ident for statement, ident in threads if statement.startswith("BEGIN")]
    assert begins == [threading.get_ident()]  # one transaction, on this (the loop's) thread
    assert len((await sqlite_store.list_completions(limit=100))["data"]) == 50


def count_begins(conn: sqlite3.Connection, into: list[str]) -> None:
    conn.set_trace_callback(lambda statement: into.append(statement) if statement.startswith("BEGIN") else None)


async def later(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def put_after(store: SqliteStore, turns: int, name: str) -> None:
    """A write made ``turns`` loop turns from now."""
    await later(turns)
    await store.put_completion(completion(name), messages())


WAIT_TURNS = 2


@pytest.fixture()
def wait_turns(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(_loop_writer, "WAIT_TURNS_MAX", WAIT_TURNS)
    return WAIT_TURNS


async def test_writes_arriving_over_consecutive_turns_share_one_commit(
    sqlite_store: SqliteStore, wait_turns: int
) -> None:
    """Group commit: while the loop is busy (the batch grew since its flush was scheduled), the batch
    waits for the next turn, up to WAIT_TURNS_MAX turns."""
    assert sqlite_store._writer is not None
    begins: list[str] = []
    count_begins(sqlite_store._writer._conn, begins)

    # two writes in the first turn (a busy loop), then one in each of the turns the batch may wait
    firsts = [put_after(sqlite_store, 0, "first-a"), put_after(sqlite_store, 0, "first-b")]
    await asyncio.gather(*firsts, *(put_after(sqlite_store, turn, f"turn-{turn}") for turn in range(1, wait_turns + 1)))
    sqlite_store._writer._conn.set_trace_callback(None)
    assert begins == ["BEGIN IMMEDIATE"]
    assert len((await sqlite_store.list_completions(limit=10))["data"]) == wait_turns + 2


async def test_a_lone_write_commits_on_the_next_turn_without_waiting_for_more(sqlite_store: SqliteStore) -> None:
    await sqlite_store.put_completion(completion("warm-up"), messages())
    put = asyncio.ensure_future(sqlite_store.put_completion(completion("alone"), messages()))
    await later(3)  # the put's task runs, its flush runs a turn later, its future resolves
    assert put.done() and put.exception() is None


async def test_a_batch_waits_no_more_than_its_turns_while_writes_keep_coming(
    sqlite_store: SqliteStore, wait_turns: int
) -> None:
    assert sqlite_store._writer is not None
    begins: list[str] = []
    count_begins(sqlite_store._writer._conn, begins)
    turns = 4 * (wait_turns + 1)

    # two writes in every turn: each batch takes its first turn's and those of the turns it waits
    writes = (put_after(sqlite_store, turn, f"steady-{turn}-{i}") for turn in range(turns) for i in range(2))
    await asyncio.gather(*writes)
    sqlite_store._writer._conn.set_trace_callback(None)
    assert len(begins) == turns // (wait_turns + 1)


async def test_a_held_write_lock_moves_writes_off_the_loop_and_keeps_their_order(db_path: Path) -> None:
    store = SqliteStore(db_path, busy_timeout_s=5.0)
    await store.start()
    try:
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        first = asyncio.ensure_future(store.put_completion(completion("first"), messages()))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(store.put_completion(completion("second"), messages()))
        started = time.monotonic()
        await asyncio.sleep(0.05)  # the loop is not blocked by the waiting writes
        assert time.monotonic() - started < 0.5
        assert not first.done() and not second.done()
        blocker.execute("ROLLBACK")
        blocker.close()
        await asyncio.gather(first, second)
        rows = seqs(db_path)
        assert rows["first"] < rows["second"]  # committed in the order they were submitted
        await store.put_completion(completion("third"), messages())  # back on the loop
        assert seqs(db_path)["third"] > rows["second"]
    finally:
        await store.stop()


async def test_checkpoints_run_on_their_own_thread(sqlite_store: SqliteStore, db_path: Path) -> None:
    assert sqlite_store._writer is not None
    assert sqlite_store._writer._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    before = file_size(db_path)
    big = "x" * 20_000
    await asyncio.gather(*(
        sqlite_store.put_completion(completion(f"big-{i}", text=big), messages()) for i in range(50)))
    assert grows_past(db_path, before + 50 * 20_000, 50 * CHECKPOINT_EVERY_S)  # the WAL was copied back


@pytest.mark.skipif(sys.platform != "linux", reason="nice is per thread on Linux only")
async def test_the_checkpointer_runs_at_the_lowest_cpu_priority_and_the_loop_keeps_its_own(
    sqlite_store: SqliteStore,
) -> None:
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    [checkpointer] = [t for t in threading.enumerate() if t.name == "relaystack-store-checkpoint"]
    assert checkpointer.native_id is not None
    assert nice_once_changed(checkpointer.native_id, loop_nice, timeout_s=5) == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_nice  # only that thread


async def test_with_synchronous_full_commits_stay_off_the_loop(db_path: Path) -> None:
    store = SqliteStore(db_path, synchronous="FULL")  # a commit fsyncs: not on the loop
    await store.start()
    try:
        assert store._writer is not None
        on_loop: list[str] = []
        store._writer._conn.set_trace_callback(on_loop.append)
        await asyncio.gather(*(store.put_completion(completion(f"c-{i}"), messages()) for i in range(5)))
        store._writer._conn.set_trace_callback(None)
        assert on_loop == [] and set(seqs(db_path)) == {f"c-{i}" for i in range(5)}
    finally:
        await store.stop()
