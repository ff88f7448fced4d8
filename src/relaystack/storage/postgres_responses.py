"""Stored Responses API answers on PostgreSQL (``ResponseStore``): the table group, writes, reads.

Same contract and row as ``sqlite_responses``: one row per response holds the response object,
its conversation's input items and its chat messages, so a response and its items are committed
together (one row, one statement) before the client is answered, and ``previous_response_id``
reads back exactly the conversation it continues, whichever instance stored it. Rows are ordered
by ``(created, seq)`` like stored chat completions; replacing an id keeps its ``seq``.

Writes go through the store's group-committing writer (``postgres_writer``) with the chat
completions; reads and deletes through the pool.
"""

from __future__ import annotations

from typing import Any, Literal

import asyncpg
import orjson

from relaystack.storage._common import make_page, validate_list_args
from relaystack.storage._responses_common import (
    decode_response,
    encode_response,
    response_not_found,
    unknown_response_after,
)
from relaystack.storage.base import CompletionPage, RenderedResponse, StoredResponse
from relaystack.storage.postgres_base import fetch_page
from relaystack.storage.postgres_schema import TableGroup
from relaystack.storage.postgres_writer import PgWriter, RowKind

__all__ = ["RESPONSES", "RESPONSE_ROWS", "PgResponses"]

RESPONSES = TableGroup("responses", (
    """
    CREATE TABLE responses (
        seq         BIGSERIAL PRIMARY KEY,
        id          TEXT   NOT NULL UNIQUE,
        created     BIGINT NOT NULL,  -- the response's created_at
        model       TEXT   NOT NULL,
        response    BYTEA  NOT NULL,  -- the response object, UTF-8 JSON
        input_items BYTEA  NOT NULL,  -- the conversation's input items, UTF-8 JSON
        messages    BYTEA  NOT NULL   -- the conversation as chat messages, UTF-8 JSON
    );
    CREATE INDEX responses_order ON responses (created, seq);
    CREATE INDEX responses_model_order ON responses (model, created, seq);
    """,
    # v2. the key that created a response (server.auth on; NULL otherwise)
    """
    ALTER TABLE responses ADD COLUMN owner TEXT;
    """,
))

RESPONSE_ROWS = RowKind("responses", """
INSERT INTO responses (id, created, model, response, input_items, messages, owner)
SELECT id, created, model, response, input_items, messages, owner
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bytea[], $5::bytea[], $6::bytea[], $7::text[])
     WITH ORDINALITY AS batch (id, created, model, response, input_items, messages, owner, position)
ORDER BY position
ON CONFLICT (id) DO UPDATE SET
    created = excluded.created, model = excluded.model, response = excluded.response,
    input_items = excluded.input_items, messages = excluded.messages, owner = excluded.owner
""")
# ``$2 IS NULL``: no owner asked for (auth off, or the admin key) matches every row
_OWNED = "($2::text IS NULL OR owner = $2::text)"
_SELECT_ONE = f"SELECT response, input_items, messages FROM responses WHERE id = $1 AND {_OWNED}"
_DELETE = f"DELETE FROM responses WHERE id = $1 AND {_OWNED}"


class PgResponses(PgWriter):
    async def put_response(
        self,
        response: dict[str, Any] | RenderedResponse,
        input_items: list[Any],
        messages: list[Any],
        *,
        owner: str | None = None,
    ) -> None:
        await self._enqueue(RESPONSE_ROWS, encode_response(response, input_items, messages, owner))

    async def get_response(self, response_id: str, *, owner: str | None = None) -> StoredResponse:
        timeout = self.settings.command_timeout_s
        row = await self._call(lambda pool: pool.fetchrow(_SELECT_ONE, response_id, owner, timeout=timeout))
        if row is None:
            raise response_not_found(response_id)
        return decode_response(row[0], row[1], row[2])

    async def delete_response(self, response_id: str, *, owner: str | None = None) -> bool:
        timeout = self.settings.command_timeout_s
        status = await self._call(lambda pool: pool.execute(_DELETE, response_id, owner, timeout=timeout))
        return bool(status != "DELETE 0")

    async def list_responses(
        self,
        *,
        after: str | None = None,
        limit: int = 20,
        model: str | None = None,
        order: Literal["asc", "desc"] = "desc",
        owner: str | None = None,
    ) -> CompletionPage:
        validate_list_args(limit, order)
        return await self._call(lambda pool: self._list_responses(pool, after, limit, model, order == "desc", owner))

    async def _list_responses(
        self, pool: asyncpg.Pool, after: str | None, limit: int, model: str | None, desc: bool, owner: str | None
    ) -> CompletionPage:
        async with pool.acquire(timeout=self.settings.command_timeout_s) as conn:
            rows = await fetch_page(
                conn, "responses", "response", after=after, limit=limit, model=model, desc=desc,
                timeout=self.settings.command_timeout_s, owner=owner,
            )  # fmt: skip
        if rows is None:
            assert after is not None
            raise unknown_response_after(after)
        return make_page([orjson.loads(row[0]) for row in rows[:limit]], has_more=len(rows) > limit)
