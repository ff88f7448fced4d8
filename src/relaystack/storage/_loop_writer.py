"""Writes committed on the event loop itself, once per loop turn; checkpoints on a thread.

Why not the writer thread alone (``_writer.Writer``): a thread running SQLite drops and retakes
the GIL around every step (BEGIN, each INSERT, the usage upsert, COMMIT). While the event loop
runs Python, each retake waits for the loop to let go (up to the 5 ms switch interval), so a
batch of a few rows took ~10-20 ms to commit under load, and every stored request waited for it:
measured end to end (``bench/run.py``, c=16, one core), p50 14 vs 11 ms for chat and 40 vs 22 ms
for sse500 against the store off, and about half the streams per second. On the loop a commit
costs only SQLite's own work (tens of µs) and no thread wake-up, futex or self-pipe write.

How: a write appends its op to the turn's batch; the first op of a turn schedules one
``call_soon`` callback, which runs after every request resumed in that turn has added its own,
and writes the whole batch in ONE transaction (``_writer.write_batch``: the same statements,
usage merging and per-write failure isolation as the thread). The loop's connection never
waits: ``busy_timeout`` is 0 and ``wal_autocheckpoint`` is 0.

Group commit: when the callback runs and the batch grew since it was scheduled (the loop is busy:
other requests are finishing), it waits one more turn, at most ``WAIT_TURNS_MAX`` turns. A lone
write (an idle loop) commits on the next turn as before. Measured under wrk (c=16, one core) on
stored chat4k and 50-event streams: rows a commit 7 -> 14, 10-18 µs less CPU a request, since a
commit's own work (its pages' WAL frames, the usage row, the locks) is shared by twice the rows.

- Another process holds the write lock (``--workers N``, the ``relaystack keys`` CLI): the batch
  is handed to the writer thread, which waits on the busy timeout as before; later batches follow
  it there until it has written everything it was given, so writes commit in submission order.
- Checkpoints (copying the WAL back into the database, with its fsync) run on their own thread and
  connection (``PASSIVE``: never blocking a writer) every ``CHECKPOINT_EVERY_S`` while commits
  happen, instead of inside some request's commit every 1,000 pages. That thread runs at the lowest
  CPU priority (nice 19, Linux): a checkpoint is milliseconds of CPU (copying a few MB), and at the
  same priority it took them from the event loop in one go whenever both shared a core, holding
  back every request in flight; now it runs in the loop's idle moments and in small slices.

Durability is unchanged: a future resolves only after its transaction committed (WAL +
``synchronous=NORMAL``: a committed transaction survives a crash or SIGKILL of the process).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from relaystack.storage._writer import (
    MAX_BATCH,
    Op,
    Writer,
    closed_error,
    dispatch,
    internal_error,
    rollback,
    settle,
    write_batch,
)

__all__ = ["CHECKPOINT_EVERY_S", "CHECKPOINT_NICE", "Checkpointer", "LoopWriter", "lower_own_priority"]

log = logging.getLogger("relaystack.storage")

# how often the checkpointer looks for new commits; at ~2,000 new rows a second the WAL grows
# to a few MB between checkpoints (journal_size_limit trims it back after one)
CHECKPOINT_EVERY_S = 0.2
# added to the checkpointer thread's nice value (the kernel caps it at 19, the lowest priority):
# measured under wrk (c=16, one core), at the loop's priority the loop ran 1-4 ms late (p50) while a
# checkpoint ran and commits made meanwhile had a p99 of 5-20 ms; at nice 19 those commits are no
# slower than the others (bench/README.md, "The stored JSON answer's tail")
CHECKPOINT_NICE = 19
# how many more loop turns a batch may wait while each turn brings it new writes (group commit)
WAIT_TURNS_MAX = 2


class LoopWriter:
    """The process's writer: commits on the loop, falls back to ``fallback``'s thread when busy."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, fallback: Writer, checkpointer: Checkpointer,
        *, on_loop: bool = True,
    ) -> None:
        self._conn = conn  # busy_timeout 0, wal_autocheckpoint 0 (see sqlite.py)
        self._path = path
        # False with synchronous=FULL: a commit then fsyncs, which must not happen on the loop
        self._on_loop = on_loop
        self._fallback = fallback
        self._checkpointer = checkpointer
        self._pending: list[Op] = []
        # the batch's size when its flush was last scheduled, and how many turns it has waited
        self._seen = 0
        self._waited = 0
        # the connection is used by one thread at a time: the loop's flush, or stop() at the end
        self._lock = threading.Lock()
        self._closed = False
        self.commits = 0  # read by the checkpointer: anything new to copy back?

    def start(self) -> None:
        self._fallback.start()
        self._checkpointer.start(lambda: self.commits + self._fallback.written)

    def submit(self, op: Op) -> None:
        pending = self._pending
        pending.append(op)
        if len(pending) == 1:  # the turn's first write: flush after the turn's other callbacks
            self._seen, self._waited = 1, 0
            op[2].get_loop().call_soon(self._flush)

    def _flush(self) -> None:
        pending = len(self._pending)
        if self._seen < pending < MAX_BATCH and self._waited < WAIT_TURNS_MAX:
            # writes came in during the last turn: more are likely in the next one, so wait for it
            # (a commit's fixed cost is several rows'); a turn with no new write flushes at once
            self._seen, self._waited = pending, self._waited + 1
            asyncio.get_running_loop().call_soon(self._flush)
            return
        with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            if self._closed:
                dispatch([(op[2], closed_error(), True) for op in batch])
                return
            if not (self._on_loop and self._fallback.idle() and self._begin()):
                self._fallback.submit_batch(batch)  # it waits on the busy timeout, off the loop
                return
            try:
                outcomes = write_batch(self._conn, self._path, batch, began=True)
            except Exception as exc:  # a bug here must not leave the batch's callers waiting
                log.exception("storage writer: unexpected error; %d writes failed", len(batch))
                rollback(self._conn)
                outcomes = [(op[2], internal_error(exc), True) for op in batch]
            self.commits += 1
        loop = asyncio.get_running_loop()
        if all(outcome[0].get_loop() is loop for outcome in outcomes):
            settle(outcomes)  # the common case: no wake-up, the futures are ours
        else:
            dispatch(outcomes)

    def _begin(self) -> bool:
        """Take the write lock without waiting; False when another connection holds it."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:  # busy, or anything else: the thread retries and reports it
            return False
        return True

    def stop(self) -> None:
        """Blocking (not on the loop): write what is pending, then stop the threads and close."""
        with self._lock:
            batch, self._pending = self._pending, []
            if batch and self._begin():
                dispatch(write_batch(self._conn, self._path, batch, began=True))
            elif batch:
                self._fallback.submit_batch(batch)
            self._closed = True
        self._fallback.stop()  # commits everything handed over, fails anything after
        self._checkpointer.stop()
        try:
            self._conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass
        self._conn.close()


class Checkpointer:
    """``PRAGMA wal_checkpoint(PASSIVE)`` on its own thread and connection while commits happen."""

    def __init__(self, conn: sqlite3.Connection, path: Path, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self._conn = conn
        self._path = path
        self._every_s = every_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relaystack-store-checkpoint", daemon=True)
        self._commits: Callable[[], int] = lambda: 0

    def start(self, commits: Callable[[], int]) -> None:
        """``commits()`` counts the commits so far: a checkpoint runs only when it moved."""
        self._commits = commits
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        lower_own_priority(CHECKPOINT_NICE)
        seen = 0
        while not self._stopping.wait(self._every_s):
            now = self._commits()
            if now != seen:
                seen = now
                self.checkpoint()
        self._conn.close()

    def checkpoint(self) -> None:
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # the next round tries again; the WAL only grows meanwhile
            log.warning("storage: checkpoint of %s failed: %s", self._path, exc)


def lower_own_priority(increment: int) -> None:
    """Add ``increment`` to the calling thread's nice value (Linux, where nice is per thread).

    Elsewhere ``setpriority`` would lower the whole process, so it does nothing; a refusal (a
    sandbox) only costs the loop the CPU the thread takes, as before."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        nice = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, nice + increment))
    except OSError as exc:
        log.debug("storage: the checkpointer keeps its CPU priority: %s", exc)
