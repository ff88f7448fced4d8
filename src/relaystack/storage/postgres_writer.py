"""The group-committing writer every PostgreSQL table group writes its rows through.

Puts queue up while a batch is being committed; the next batch is ONE ``INSERT ... SELECT FROM
unnest(...)`` statement per *row kind* in it (autocommit: one commit per kind), sent by a writer
with a connection of its own (``_Lane``). Measured with ``bench/pg_drivers.py``: ~9 us of client
CPU per row in a batch of 16 against ~90 us for a statement per row. A put returns only after
its row committed.

A row kind (``RowKind``) is a table group's upsert: stored chat completions, stored responses and
usage totals each have one, so a response and a completion put at the same moment share one round
trip each instead of one transaction per request. A row is a tuple whose first ``identity``
fields are its id; the statement takes one array per field, in order, and must insert the rows in
array order (``WITH ORDINALITY ... ORDER BY position``) so the ``seq`` each new row takes follows
the order the puts arrived in. One statement cannot touch a row twice, so rows of one id in a
batch become one: the last put wins (a replace), or the kind's ``merge`` adds them up (counters).

``PgSettings.writers`` > 1 runs several writers: while one waits for its commit (PostgreSQL's
fsync) another sends the next batch, at the price of smaller batches (more CPU per row). A row
goes to the writer its id hashes to, so puts of one id stay in order; puts of different ids
in flight together may then take their ``seq`` in either order. One writer (the default) keeps
FIFO order; measure before raising it (this machine was too noisy to tell).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from relaystack.errors import RelaystackError
from relaystack.storage.postgres_base import PgBase

__all__ = ["MAX_BATCH", "PgWriter", "RowKind"]

log = logging.getLogger("relaystack.storage")

MAX_BATCH = 512


@dataclass(frozen=True, slots=True, eq=False)
class RowKind:
    """One table's group upsert: ``sql`` takes one array parameter per row field."""

    name: str
    sql: str
    # rows of one id in one batch: None, the last put wins; else merge(earlier, later) -> row
    merge: Callable[[tuple[Any, ...], tuple[Any, ...]], tuple[Any, ...]] | None = None
    identity: int = 1  # how many leading fields make a row's id


# (its kind, the row, the future its put awaits)
_Pending = tuple[RowKind, tuple[Any, ...], "asyncio.Future[None]"]


class _Lane:
    """One writer: a queue, the task draining it, and its own connection (no pool acquire and
    release per batch: measured, half the client CPU of a batch of one)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.queue: deque[_Pending] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.conn: asyncpg.Connection | None = None
        self.stopping = False

    def drop_conn(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.terminate()


class PgWriter(PgBase):
    """The writer lanes; table groups call ``_enqueue(kind, row)`` and await the result."""

    _lanes: list[_Lane]

    def _init_writer(self) -> None:
        self._lanes = [_Lane(i) for i in range(self.settings.writers)]

    def _start_writer(self) -> None:
        loop = asyncio.get_running_loop()
        for lane in self._lanes:
            lane.task = loop.create_task(self._write_loop(lane), name=f"relaystack-pg-writer-{lane.index}")

    async def _drain_writer(self) -> None:
        """Commit (or fail) everything queued so far, then end the writers."""
        for lane in self._lanes:
            lane.stopping = True
            lane.wakeup.set()
        for lane in self._lanes:
            if lane.task is not None:
                await lane.task
            lane.drop_conn()

    def _enqueue(self, kind: RowKind, row: tuple[Any, ...]) -> asyncio.Future[None]:
        """Queue one row; the future resolves once it is committed (or fails with the reason)."""
        self._check()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane = self._lanes[hash(row[0]) % len(self._lanes)]
        lane.queue.append((kind, row, future))
        lane.wakeup.set()
        return future

    async def _write_loop(self, lane: _Lane) -> None:
        queue = lane.queue
        while True:
            if not queue:
                if lane.stopping:
                    return
                lane.wakeup.clear()
                await lane.wakeup.wait()
                continue
            batch = [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]
            for kind_batch in _by_kind(batch):
                try:
                    await self._commit(lane, kind_batch)
                except Exception:  # a bug here must not kill the writer: fail the batch
                    log.exception("PostgreSQL writer: unexpected error; %d writes failed", len(kind_batch))
                    _settle(kind_batch, RelaystackError("Storing failed with an internal error (see the server log)."))

    async def _commit(self, lane: _Lane, batch: list[_Pending]) -> None:
        """Commit rows of one kind in one statement; a row PostgreSQL refuses fails alone."""
        if self._unavailable_error is not None:  # known down: fail fast, the monitor will notice recovery
            _settle(batch, self._unavailable_error)
            return
        try:
            await self._upsert(lane, _one_per_id(batch))
        except Exception as exc:
            error = self._translate(exc)
            if self._unavailable_error is not None:
                lane.drop_conn()
            if self._unavailable_error is not None or len(batch) == 1:
                _settle(batch, error)
                return
            await self._commit_one_by_one(lane, batch)  # one row is bad on its own: find it, keep the others
            return
        _settle(batch, None)

    async def _commit_one_by_one(self, lane: _Lane, batch: list[_Pending]) -> None:
        for pending in batch:
            try:
                await self._upsert(lane, [pending])
            except Exception as exc:
                _settle([pending], self._translate(exc))
            else:
                _settle([pending], None)

    async def _upsert(self, lane: _Lane, batch: list[_Pending]) -> None:
        conn = lane.conn
        if conn is None or conn.is_closed():
            conn = lane.conn = await self._connect_one(f"writer-{lane.index}")
        columns = list(zip(*(row for _kind, row, _future in batch), strict=True))
        await conn.execute(batch[0][0].sql, *columns, timeout=self.settings.command_timeout_s)


def _by_kind(batch: list[_Pending]) -> list[list[_Pending]]:
    """The batch split by row kind, each part in arrival order (one statement per kind)."""
    first_kind = batch[0][0]
    if all(pending[0] is first_kind for pending in batch):
        return [batch]
    parts: dict[str, list[_Pending]] = {}
    for pending in batch:
        parts.setdefault(pending[0].name, []).append(pending)
    return list(parts.values())


def _one_per_id(batch: list[_Pending]) -> list[_Pending]:
    """One row per id (one statement cannot update a row twice): the last put winning, or the
    rows merged by the kind's ``merge``. Only the rows are sent: the futures are settled from
    the whole batch."""
    if len(batch) == 1:
        return batch
    kind = batch[0][0]
    latest: dict[Any, _Pending] = {}
    if kind.merge is None:
        for pending in batch:
            latest[pending[1][0]] = pending  # the first put's position (its seq), the last put's content
        return list(latest.values())
    size = kind.identity
    for pending in batch:
        where = pending[1][:size]
        earlier = latest.get(where)
        latest[where] = pending if earlier is None else (kind, kind.merge(earlier[1], pending[1]), pending[2])
    return list(latest.values())


def _settle(batch: list[_Pending], error: BaseException | None) -> None:
    for _kind, _row, future in batch:
        if future.done():  # the request was cancelled; the write happened (or failed) anyway
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
