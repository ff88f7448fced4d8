"""Stored chat completions on PostgreSQL: the table group and its group-committing writer.

Same contract as ``SqliteStore``: rows ordered by ``(created, seq)`` where ``seq`` comes from
one sequence shared by every instance, so a cursor never skips nor repeats rows of one second,
whichever instance wrote them; replacing an id updates the row in place and keeps its ``seq``.

Writes are group-committed: puts queue up while a batch is being committed, and the next
batch is ONE ``INSERT ... SELECT FROM unnest(...)`` statement (autocommit, so one commit for the
batch), sent by a writer with a connection of its own (``_Lane``). Measured with
``bench/pg_drivers.py``: ~9 us of client CPU per row in a batch of 16 against ~90 us for a
statement per row. A put returns only after its batch committed.

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
from typing import Any, Literal

import asyncpg

from relaystack.errors import RelaystackError
from relaystack.storage._common import (
    CompletionRow,
    completion_not_found,
    encode_completion,
    encode_stream,
    make_item,
    make_page,
    unknown_after,
    validate_list_args,
)
from relaystack.storage.base import CompletionPage
from relaystack.storage.postgres_base import PgBase
from relaystack.storage.postgres_schema import TableGroup

__all__ = ["COMPLETIONS", "PgCompletions"]

log = logging.getLogger("relaystack.storage")

COMPLETIONS = TableGroup("chat_completions", (
    """
    CREATE TABLE chat_completions (
        seq            BIGSERIAL PRIMARY KEY,
        id             TEXT   NOT NULL UNIQUE,
        created        BIGINT NOT NULL,
        model          TEXT   NOT NULL,
        completion     BYTEA  NOT NULL,  -- the chat.completion (UTF-8 JSON) or a stream's SSE events
        input_messages BYTEA  NOT NULL   -- the request's messages, UTF-8 JSON
    );
    CREATE INDEX chat_completions_order ON chat_completions (created, seq);
    CREATE INDEX chat_completions_model_order ON chat_completions (model, created, seq);
    """,
))

MAX_BATCH = 512

_UPSERT_MANY = """
INSERT INTO chat_completions (id, created, model, completion, input_messages)
SELECT id, created, model, completion, input_messages
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[], $5::bytea[])
     WITH ORDINALITY AS batch (id, created, model, completion, input_messages, position)
ORDER BY position
ON CONFLICT (id) DO UPDATE SET
    created = excluded.created, model = excluded.model,
    completion = excluded.completion, input_messages = excluded.input_messages
"""
_SELECT_CURSOR = "SELECT created, seq FROM chat_completions WHERE id = $1"
_SELECT_ONE = "SELECT completion, input_messages, model FROM chat_completions WHERE id = $1"

# (row, the future its put awaits)
_Pending = tuple[CompletionRow, "asyncio.Future[None]"]



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


class PgCompletions(PgBase):
    _lanes: list[_Lane]

    def _init_completions(self) -> None:
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

    # -- writes -------------------------------------------------------------------------
    async def put_completion(self, completion: dict[str, Any], input_messages: list[Any]) -> None:
        await self._enqueue(encode_completion(completion, input_messages))

    async def put_stream(
        self, completion_id: str, created: int, model: str, events: bytes, input_messages: list[Any]
    ) -> None:
        await self._enqueue(encode_stream(completion_id, created, model, events, input_messages))

    def _enqueue(self, row: CompletionRow) -> asyncio.Future[None]:
        self._check()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane = self._lanes[hash(row[0]) % len(self._lanes)]
        lane.queue.append((row, future))
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
            try:
                await self._commit(lane, batch)
            except Exception:  # a bug here must not kill the writer: fail the batch
                log.exception("PostgreSQL writer: unexpected error; %d writes failed", len(batch))
                _settle(batch, RelaystackError("Storing failed with an internal error (see the server log)."))

    async def _commit(self, lane: _Lane, batch: list[_Pending]) -> None:
        if self._unavailable_error is not None:  # known down: fail fast, the monitor will notice recovery
            _settle(batch, self._unavailable_error)
            return
        try:
            await self._upsert(lane, [row for row, _ in _last_per_id(batch)])
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
                await self._upsert(lane, [pending[0]])
            except Exception as exc:
                _settle([pending], self._translate(exc))
            else:
                _settle([pending], None)

    async def _upsert(self, lane: _Lane, rows: list[CompletionRow]) -> None:
        conn = lane.conn
        if conn is None or conn.is_closed():
            conn = lane.conn = await self._connect_one(f"writer-{lane.index}")
        columns = list(zip(*rows, strict=True))
        await conn.execute(_UPSERT_MANY, *columns, timeout=self.settings.command_timeout_s)

    # -- reads --------------------------------------------------------------------------
    async def list_completions(
        self,
        *,
        after: str | None = None,
        limit: int = 20,
        model: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> CompletionPage:
        validate_list_args(limit, order)
        return await self._call(lambda pool: self._list(pool, after, limit, model, order == "desc"))

    async def _list(
        self, pool: asyncpg.Pool, after: str | None, limit: int, model: str | None, desc: bool
    ) -> CompletionPage:
        timeout = self.settings.command_timeout_s
        async with pool.acquire(timeout=timeout) as conn:
            where: list[str] = []
            args: list[Any] = []
            if model is not None:
                args.append(model)
                where.append(f"model = ${len(args)}")
            if after is not None:
                position = await conn.fetchrow(_SELECT_CURSOR, after, timeout=timeout)
                if position is None:
                    raise unknown_after(after)
                args.extend(position)
                where.append(f"(created, seq) {'<' if desc else '>'} (${len(args) - 1}, ${len(args)})")
            direction = "DESC" if desc else "ASC"
            args.append(limit + 1)
            sql = (
                "SELECT completion, input_messages, model FROM chat_completions"
                + (" WHERE " + " AND ".join(where) if where else "")
                + f" ORDER BY created {direction}, seq {direction} LIMIT ${len(args)}"
            )
            rows = await conn.fetch(sql, *args, timeout=timeout)
        items = [make_item(row[0], row[1], row[2]) for row in rows[:limit]]
        return make_page(items, has_more=len(rows) > limit)

    async def get_completion(self, completion_id: str) -> dict[str, Any]:
        row = await self._call(
            lambda pool: pool.fetchrow(_SELECT_ONE, completion_id, timeout=self.settings.command_timeout_s)
        )
        if row is None:
            raise completion_not_found(completion_id)
        return make_item(row[0], row[1], row[2])


def _last_per_id(batch: list[_Pending]) -> list[_Pending]:
    """One row per id, the last put winning (one statement cannot update a row twice)."""
    if len(batch) == 1:
        return batch
    latest: dict[str, _Pending] = {}
    for pending in batch:
        latest[pending[0][0]] = pending  # the first put's position (its seq), the last put's content
    return list(latest.values())


def _settle(batch: list[_Pending], error: BaseException | None) -> None:
    for _row, future in batch:
        if future.done():  # the request was cancelled; the write happened (or failed) anyway
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
