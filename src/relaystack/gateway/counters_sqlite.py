"""Limit counters shared by the worker processes of one machine, in a SQLite file.

``relaystack run --workers N`` without a shared-state server: each worker's in-process counters
would let N times the limit through. Here every admission is a short ``BEGIN IMMEDIATE``
transaction on ``<db>-limits.db`` (a file of its own, so it never waits on the completions
store's writes), read-check-write, so the workers together admit exactly the limit. One writer
thread per process group-commits the admissions that arrive together, as the store does.

Slots (concurrent requests) are rows per (name, process id): a process that dies holding slots
is found out (its pid is gone) the next time a slot is refused, and its rows are dropped.
The counters are ephemeral: deleting the file while no server runs resets every limit.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

from relaystack.gateway.counters import BUCKETS, Ask, Outcome, Window, WindowState, bucket_of, reset_after
from relaystack.storage._schema import connect
from relaystack.storage._writer import RUN, Writer

__all__ = ["SqliteCounters", "limits_path"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS window_buckets (
        name    TEXT    NOT NULL,
        bucket  INTEGER NOT NULL,
        amount  INTEGER NOT NULL,
        expires REAL    NOT NULL,
        PRIMARY KEY (name, bucket)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS window_buckets_expiry ON window_buckets (expires)",
    """CREATE TABLE IF NOT EXISTS slots (
        name TEXT    NOT NULL,
        pid  INTEGER NOT NULL,
        used INTEGER NOT NULL,
        PRIMARY KEY (name, pid)
    ) WITHOUT ROWID""",
)
_USED = "SELECT coalesce(sum(amount), 0), min(bucket) FROM window_buckets WHERE name = ? AND bucket > ?"
_ADD = """
INSERT INTO window_buckets (name, bucket, amount, expires) VALUES (?, ?, ?, ?)
ON CONFLICT (name, bucket) DO UPDATE SET amount = amount + excluded.amount
"""
_SLOTS_USED = "SELECT coalesce(sum(used), 0) FROM slots WHERE name = ?"
_TAKE_SLOT = """
INSERT INTO slots (name, pid, used) VALUES (?, ?, 1)
ON CONFLICT (name, pid) DO UPDATE SET used = used + 1
"""
_GIVE_SLOT = "UPDATE slots SET used = used - 1 WHERE name = ? AND pid = ?"
_DROP_EMPTY_SLOTS = "DELETE FROM slots WHERE name = ? AND pid = ? AND used <= 0"
_OTHER_PIDS = "SELECT DISTINCT pid FROM slots WHERE name = ? AND pid != ?"
_DROP_PID = "DELETE FROM slots WHERE pid = ?"
_PRUNE = "DELETE FROM window_buckets WHERE expires < ?"
_PRUNE_EVERY = 512


def limits_path(db_path: Path) -> Path:
    return db_path.with_name(f"{db_path.stem}-limits.db")


class SqliteCounters:
    def __init__(self, path: Path, clock: Any = None) -> None:
        import time

        self.path = path
        self._clock = clock or time.time
        self._writer: Writer | None = None
        self._pid = os.getpid()
        self._since_prune = 0

    async def start(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # counters need no durability across a power loss: synchronous=OFF keeps commits cheap
        conn = connect(self.path, busy_timeout_s=5.0, synchronous="OFF")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            self._pid = os.getpid()
            conn.execute(_DROP_PID, (self._pid,))  # a previous process that had our pid
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        self._writer = Writer(conn, self.path)
        self._writer.start()

    async def stop(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.stop)

    def _run(self, fn: Any) -> asyncio.Future[Any]:
        if self._writer is None:
            raise RuntimeError("SqliteCounters is not started")
        future = asyncio.get_running_loop().create_future()
        self._writer.submit((RUN, (fn,), future))
        return future

    async def admit(self, ask: Ask) -> Outcome:
        self._since_prune += 1
        prune = self._since_prune >= _PRUNE_EVERY
        if prune:
            self._since_prune = 0
        outcome: Outcome = await self._run(partial(_admit, ask, self._clock(), self._pid, prune))
        return outcome

    async def settle(self, tokens: tuple[tuple[Window, int], ...], slots: tuple[str, ...]) -> None:
        if tokens or slots:
            await self._run(partial(_settle, tokens, slots, self._clock(), self._pid))


def _admit(ask: Ask, now: float, pid: int, prune: bool, conn: sqlite3.Connection) -> Outcome:
    if prune:
        conn.execute(_PRUNE, (now,))
    states: list[tuple[Window, int, int | None]] = []
    for window in ask.windows:
        current = bucket_of(window, now)
        used, oldest = conn.execute(_USED, (window.name, current - BUCKETS)).fetchone()
        if used >= window.limit:
            counted = tuple(WindowState(w, u, reset_after(w, o, now)) for w, u, o in states)
            return Outcome(False, counted, window, max(1.0, reset_after(window, oldest, now)))
        states.append((window, int(used), oldest))
    for name, limit in ask.slots:
        if _slots_used(conn, name) >= limit and (not _reap_dead(conn, name, pid) or _slots_used(conn, name) >= limit):
            counted = tuple(WindowState(w, u, reset_after(w, o, now)) for w, u, o in states)
            return Outcome(False, counted, name, 1.0)
    result: list[WindowState] = []
    for window, used, oldest in states:
        if window.kind == "requests":
            current = bucket_of(window, now)
            conn.execute(_ADD, (window.name, current, 1, (current + BUCKETS + 1) * window.bucket_seconds))
            used += 1
            oldest = current if oldest is None else oldest
        result.append(WindowState(window, used, reset_after(window, oldest, now)))
    for name, _limit in ask.slots:
        conn.execute(_TAKE_SLOT, (name, pid))
    return Outcome(True, tuple(result))


def _settle(
    tokens: tuple[tuple[Window, int], ...], slots: tuple[str, ...], now: float, pid: int, conn: sqlite3.Connection
) -> None:
    for window, amount in tokens:
        if amount > 0:
            current = bucket_of(window, now)
            conn.execute(_ADD, (window.name, current, amount, (current + BUCKETS + 1) * window.bucket_seconds))
    for name in slots:
        conn.execute(_GIVE_SLOT, (name, pid))
        conn.execute(_DROP_EMPTY_SLOTS, (name, pid))


def _slots_used(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute(_SLOTS_USED, (name,)).fetchone()[0])


def _reap_dead(conn: sqlite3.Connection, name: str, pid: int) -> bool:
    """Drop the slots of processes that are gone; True if any were."""
    reaped = False
    for (other,) in conn.execute(_OTHER_PIDS, (name, pid)).fetchall():
        if not _alive(int(other)):
            conn.execute(_DROP_PID, (other,))
            reaped = True
    return reaped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
