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
