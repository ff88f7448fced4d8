"""Stored chat completions on PostgreSQL: the table group, its writes and its reads.

Same contract as ``SqliteStore``: rows ordered by ``(created, seq)`` where ``seq`` comes from
one sequence shared by every instance, so a cursor never skips nor repeats rows of one second,
whichever instance wrote them; replacing an id updates the row in place and keeps its ``seq``.

Writes are group-committed by the store's writer (``postgres_writer``): a put returns only
after the batch it went out in committed.
"""

from __future__ import annotations

from typing import Any, Literal

import asyncpg

from relaystack.storage._common import (
    completion_not_found,
    encode_completion,
    encode_stream,
    make_item,
    make_page,
    unknown_after,
    validate_list_args,
)
from relaystack.storage.base import CompletionPage, UsageRow
from relaystack.storage.postgres_base import fetch_page
from relaystack.storage.postgres_keys import USAGE_ROWS
from relaystack.storage.postgres_schema import TableGroup
from relaystack.storage.postgres_writer import PgWriter, RowKind

__all__ = ["COMPLETIONS", "COMPLETION_ROWS", "PgCompletions"]

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

COMPLETION_ROWS = RowKind("chat_completions", """
INSERT INTO chat_completions (id, created, model, completion, input_messages)
SELECT id, created, model, completion, input_messages
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[], $5::bytea[])
     WITH ORDINALITY AS batch (id, created, model, completion, input_messages, position)
ORDER BY position
ON CONFLICT (id) DO UPDATE SET
    created = excluded.created, model = excluded.model,
    completion = excluded.completion, input_messages = excluded.input_messages
""")
_SELECT_ONE = "SELECT id, created, completion, input_messages, model FROM chat_completions WHERE id = $1"


class PgCompletions(PgWriter):
    # -- writes -------------------------------------------------------------------------
    async def put_completion(
        self, completion: dict[str, Any], input_messages: list[Any], raw: bytes | None = None,
        usage: UsageRow | None = None,
    ) -> None:
        await self._put_with_usage(encode_completion(completion, input_messages, raw), usage)

    async def put_stream(
        self, completion_id: str, created: int, model: str, events: bytes, input_messages: list[Any],
        usage: UsageRow | None = None,
    ) -> None:
        await self._put_with_usage(encode_stream(completion_id, created, model, events, input_messages), usage)

    async def _put_with_usage(self, row: tuple[Any, ...], usage: UsageRow | None) -> None:
        """The completion, and its request's usage queued beside it (each kind is its own
        group statement here, so they commit separately); returns once both committed."""
        stored = self._enqueue(COMPLETION_ROWS, row)
        if usage is None:
            await stored
            return
        counted = self._enqueue(USAGE_ROWS, tuple(usage))
        try:
            await stored
        finally:
            await counted

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
        async with pool.acquire(timeout=self.settings.command_timeout_s) as conn:
            rows = await fetch_page(
                conn, "chat_completions", "id, created, completion, input_messages, model", after=after, limit=limit,
                model=model, desc=desc, timeout=self.settings.command_timeout_s,
            )  # fmt: skip
        if rows is None:
            assert after is not None
            raise unknown_after(after)
        items = [make_item(*row) for row in rows[:limit]]
        return make_page(items, has_more=len(rows) > limit)

    async def get_completion(self, completion_id: str) -> dict[str, Any]:
        row = await self._call(
            lambda pool: pool.fetchrow(_SELECT_ONE, completion_id, timeout=self.settings.command_timeout_s)
        )
        if row is None:
            raise completion_not_found(completion_id)
        return make_item(*row)

