"""The writer thread: group commit, acknowledged only once committed; the batch logic it shares.

Writes normally commit on the event loop (``_loop_writer.LoopWriter``, which calls
``write_batch`` itself); this thread takes the batches the loop must not wait for: while another
connection holds the write lock (it waits on the busy timeout), with ``synchronous=FULL`` (an
fsync per commit), and everything after those until it has caught up (submission order).

Ops handed to it: requests put ``(kind, params, future)`` on a ``SimpleQueue`` and await
the future. The thread takes everything queued (up to ``MAX_BATCH``), writes it in ONE
``BEGIN IMMEDIATE ... COMMIT`` transaction, then resolves the batch's futures with one
``call_soon_threadsafe`` per event loop. While one batch commits the next one accumulates,
so the number of transactions adapts to the load without any timer.

A stored completion with its request's usage row (``PUT_COMPLETION_USAGE``) is one op: its rows
commit together or not at all. The usage rows of a batch are merged per (day, key, model,
provider) and upserted once each just before the commit; if that upsert fails on a value (not the
database), the batch is written again with one upsert per op, to fail only the op at fault.

Durability: WAL + ``synchronous=NORMAL`` makes a committed transaction survive a crash or
SIGKILL of the process (the WAL frames are in the OS page cache); only an OS crash or power
loss can drop the last commits. ``synchronous=FULL`` closes that gap at one fsync per batch.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relaystack.errors import RelaystackError, ServiceUnavailableError
from relaystack.storage._common import StoreClosedError

__all__ = [
    "ADD_USAGE", "DELETE_MODEL", "PUT_COMPLETION", "PUT_COMPLETION_USAGE", "PUT_MODEL", "RUN", "Op", "Writer",
    "closed_error", "dispatch", "internal_error", "rollback", "settle", "storage_error", "write_batch",
]

log = logging.getLogger("relaystack.storage")

PUT_COMPLETION, PUT_MODEL, DELETE_MODEL = 0, 1, 2
# params = (fn,): ``fn(conn)`` runs inside the batch's transaction; its result resolves the future
# (lets a separate part of the store, e.g. storage/sqlite_responses.py, keep its SQL to itself)
RUN = 3
# params = (completion's params, usage row): a stored completion and the usage of the request that
# made it, one write (committed together or not at all). The usage rows of a batch are merged per
# (day, key, model, provider) into one upsert each, run just before the batch commits.
PUT_COMPLETION_USAGE = 4
MAX_BATCH = 1024

# (kind, bound parameters, the future the caller awaits)
Op = tuple[int, tuple[Any, ...], "asyncio.Future[Any]"]
# (future, result or exception, is it an exception)
_Outcome = tuple["asyncio.Future[Any]", Any, bool]

_UPSERT_COMPLETION = """
INSERT INTO chat_completions (id, created, model, completion, input_messages) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    created = excluded.created, model = excluded.model,
    completion = excluded.completion, input_messages = excluded.input_messages
"""
_UPSERT_MODEL = """
INSERT INTO models (identifier, model) VALUES (?, ?)
ON CONFLICT (identifier) DO UPDATE SET model = excluded.model
"""
_DELETE_MODEL = "DELETE FROM models WHERE identifier = ?"
ADD_USAGE = """
INSERT INTO usage_daily
    (day, key_id, model, provider, requests, prompt_tokens, completion_tokens, cached_tokens, cost)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, key_id, model, provider) DO UPDATE SET
    requests = requests + excluded.requests,
    prompt_tokens = prompt_tokens + excluded.prompt_tokens,
    completion_tokens = completion_tokens + excluded.completion_tokens,
    cached_tokens = cached_tokens + excluded.cached_tokens,
    cost = cost + excluded.cost
"""
_BUMP_MODELS_VERSION = "UPDATE meta SET value = value + 1 WHERE key = 'models_version'"


class Writer:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self._queue: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        # daemon: a process that exits without stop() must not hang on this thread; what was
        # acknowledged is committed already, only unacknowledged writes are dropped.
        self._thread = threading.Thread(target=self._run, name="relaystack-store-writer", daemon=True)
        # ops handed over / ops written (or failed), each counted by one thread only: while they
        # differ, the event loop's writer (_loop_writer.py) hands its next batches here too, so
        # writes still commit in the order they were submitted
        self.submitted = 0
        self.written = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: Op) -> None:
        self.submitted += 1
        self._queue.put(op)

    def submit_batch(self, batch: list[Op]) -> None:
        self.submitted += len(batch)
        for op in batch:
            self._queue.put(op)

    def idle(self) -> bool:
        """Nothing handed over is still waiting to be written."""
        return self.written == self.submitted

    def stop(self) -> None:
        """Blocking: let the thread commit everything queued before this call, then close."""
        self._queue.put(None)
        self._thread.join()

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._take_batch()
            if batch:
                try:
                    self._write(batch)
                except Exception as exc:  # a bug here must not kill the thread: fail the batch
                    log.exception("storage writer: unexpected error; %d writes failed", len(batch))
                    self._rollback()
                    dispatch([(op[2], internal_error(exc), True) for op in batch])
                self.written += len(batch)
        self._fail_leftovers()
        try:
            self._conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass
        self._conn.close()

    def _take_batch(self) -> tuple[list[Op], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        get = self._queue.get_nowait
        try:
            while len(batch) < MAX_BATCH:
                op = get()
                if op is None:
                    return batch, True
                batch.append(op)
        except queue.Empty:
            pass
        return batch, False

    def _fail_leftovers(self) -> None:
        """Writes submitted after stop() began (from another thread or loop): refuse them clearly."""
        leftovers: list[_Outcome] = []
        while True:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            if op is not None:
                leftovers.append((op[2], closed_error(), True))
        dispatch(leftovers)

    def _write(self, batch: list[Op]) -> None:
        dispatch(write_batch(self._conn, self._path, batch))

    def _rollback(self) -> None:
        rollback(self._conn)


def write_batch(conn: sqlite3.Connection, path: Path, batch: list[Op], *, began: bool = False) -> list[_Outcome]:
    """Write ``batch`` in one transaction; the outcome of every op, for its future.

    ``began``: the caller already ran ``BEGIN IMMEDIATE`` (the event loop's writer tries it
    without waiting before it commits itself to the batch)."""
    outcomes: list[_Outcome] = []
    merge_usage = True
    while batch:
        results, failed_at, error = _transaction(conn, batch, merge_usage, began=began)
        began = False
        if error is _MERGED_USAGE_FAILED:  # find the write at fault: usage upserted per write
            merge_usage = False
            continue
        if error is None:
            outcomes.extend((op[2], result, False) for op, result in zip(batch, results, strict=True))
            break
        if failed_at is None:  # the transaction itself failed (locked, I/O, disk full): all fail
            log.error("storage writer: %s: %d writes failed: %s", path, len(batch), error)
            outcomes.extend((op[2], storage_error(error), True) for op in batch)
            break
        # one write is bad on its own: fail it, retry the others (rolled back with it)
        log.error("storage writer: %s: a write failed: %s", path, error)
        outcomes.append((batch[failed_at][2], storage_error(error), True))
        batch = batch[:failed_at] + batch[failed_at + 1 :]
    return outcomes


def _transaction(
    conn: sqlite3.Connection, batch: list[Op], merge_usage: bool = True, *, began: bool = False
) -> tuple[list[Any], int | None, Exception | None]:
    if not began:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [], None, exc
    results: list[Any] = []
    usage: dict[tuple[Any, ...], list[Any]] | None = {} if merge_usage else None
    for index, (kind, params, _future) in enumerate(batch):
        try:
            if kind == PUT_COMPLETION_USAGE:
                conn.execute(_UPSERT_COMPLETION, params[0])
                _add_usage_row(conn, params[1], usage)
                results.append(None)
            else:
                results.append(_apply(conn, kind, params))
        except sqlite3.OperationalError as exc:  # locked, I/O, disk full: not this write's fault
            rollback(conn)
            return [], None, exc
        except Exception as exc:  # this write's own fault (a constraint, an int out of range)
            rollback(conn)
            return [], index, exc
    if usage:
        try:
            _upsert_usage(conn, [tuple(total) for total in usage.values()])
        except sqlite3.OperationalError as exc:
            rollback(conn)
            return [], None, exc
        except Exception:  # e.g. a sum out of range: which write is at fault is not known here
            rollback(conn)
            return [], None, _MERGED_USAGE_FAILED
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        rollback(conn)
        return [], None, exc
    return results, None, None


def rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.exception("storage writer: rollback failed")


def _upsert_usage(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    if len(rows) == 1:
        conn.execute(ADD_USAGE, rows[0])  # the common case; executemany costs more for one row
    else:
        conn.executemany(ADD_USAGE, rows)


class _MergedUsageFailed(Exception):
    """The merged usage upsert of a batch failed on a value (not the database): retry unmerged."""


_MERGED_USAGE_FAILED = _MergedUsageFailed()


def _add_usage_row(
    conn: sqlite3.Connection, row: tuple[Any, ...], merged: dict[tuple[Any, ...], list[Any]] | None
) -> None:
    """Add one usage row to the batch's merged totals (upserted before it commits), or upsert
    it now when ``merged`` is None (a retry finding the write whose values fail)."""
    if merged is None:
        conn.execute(ADD_USAGE, row)
        return
    merge_usage_row(merged, row)


def merge_usage_row(merged: dict[tuple[Any, ...], list[Any]], row: Sequence[Any]) -> None:
    """Add one usage row's counts to the totals of its (day, key, model, provider)."""
    where = tuple(row[:4])
    total = merged.get(where)
    if total is None:
        merged[where] = list(row)
    else:
        total[4] += row[4]
        total[5] += row[5]
        total[6] += row[6]
        total[7] += row[7]
        total[8] += row[8]


def _apply(conn: sqlite3.Connection, kind: int, params: tuple[Any, ...]) -> Any:
    if kind == PUT_COMPLETION:
        conn.execute(_UPSERT_COMPLETION, params)
        return None
    if kind == PUT_MODEL:
        conn.execute(_UPSERT_MODEL, params)
        conn.execute(_BUMP_MODELS_VERSION)
        return None
    if kind == DELETE_MODEL:
        existed = conn.execute(_DELETE_MODEL, params).rowcount > 0
        if existed:
            conn.execute(_BUMP_MODELS_VERSION)
        return existed
    if kind == RUN:
        return params[0](conn)
    raise ValueError(f"unknown write kind {kind}")


def dispatch(outcomes: list[_Outcome]) -> None:
    """Hand the outcomes to their event loops: one wake-up per loop per batch, not per write."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(settle, items)
        except RuntimeError:  # that loop is closed: nobody awaits these futures any more
            pass


def settle(outcomes: list[_Outcome]) -> None:
    for future, value, is_error in outcomes:
        if future.done():  # the awaiting request was cancelled; the write happened anyway
            continue
        if is_error:
            future.set_exception(value)
        else:
            future.set_result(value)


def storage_error(exc: Exception) -> RelaystackError:
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return ServiceUnavailableError(
            "The storage database stayed locked by another process longer than the busy timeout; "
            "retry the request."
        )
    return RelaystackError("Storing failed with a database error (details in the server log).")


def internal_error(exc: Exception) -> RelaystackError:
    return RelaystackError(
        f"Storing failed with an internal error ({type(exc).__name__}; see the server log)."
    )


def closed_error() -> StoreClosedError:
    return StoreClosedError("The store is stopped (the server is shutting down); nothing was written.")
