"""The ``ResponseStore`` part of ``SqliteStore`` (mixed in), in its own table ``responses``.

Writes go through the store's one writer thread (group commit, acknowledged once committed),
reads through its read pool, exactly like chat completions; the SQL stays here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson

from relaystack.storage._common import make_page, validate_list_args
from relaystack.storage._responses_common import (
    ResponseRow,
    decode_response,
    encode_response,
    response_not_found,
    unknown_response_after,
)
from relaystack.storage._writer import RUN
from relaystack.storage.base import CompletionPage, RenderedResponse, StoredResponse

if TYPE_CHECKING:
    import asyncio

__all__ = ["SqliteResponses"]

_T = TypeVar("_T")

_UPSERT = """
INSERT INTO responses (id, created, model, response, input_items, messages, owner) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    created = excluded.created, model = excluded.model, response = excluded.response,
    input_items = excluded.input_items, messages = excluded.messages, owner = excluded.owner
"""
# ``?2 IS NULL``: no owner asked for (auth off, or the admin key) matches every row
_OWNED = "(?2 IS NULL OR owner = ?2)"
_DELETE = f"DELETE FROM responses WHERE id = ?1 AND {_OWNED}"
_SELECT_ONE = f"SELECT response, input_items, messages FROM responses WHERE id = ?1 AND {_OWNED}"
_SELECT_CURSOR = f"SELECT created, seq FROM responses WHERE id = ?1 AND {_OWNED}"


def _upsert(row: ResponseRow, conn: sqlite3.Connection) -> None:
    conn.execute(_UPSERT, row)


def _delete(response_id: str, owner: str | None, conn: sqlite3.Connection) -> bool:
    return conn.execute(_DELETE, (response_id, owner)).rowcount > 0


class SqliteResponses:
    if TYPE_CHECKING:  # provided by SqliteStore

        def _submit(self, kind: int, params: tuple[Any, ...]) -> asyncio.Future[Any]: ...

        async def _read(self, fn: Callable[..., _T], *args: Any) -> _T: ...

        def _read_conn(self) -> sqlite3.Connection: ...

    async def put_response(
        self,
        response: dict[str, Any] | RenderedResponse,
        input_items: list[Any],
        messages: list[Any],
        *,
        owner: str | None = None,
    ) -> None:
        row = encode_response(response, input_items, messages, owner)
        await self._submit(RUN, (partial(_upsert, row),))

    async def delete_response(self, response_id: str, *, owner: str | None = None) -> bool:
        return bool(await self._submit(RUN, (partial(_delete, response_id, owner),)))

    async def get_response(self, response_id: str, *, owner: str | None = None) -> StoredResponse:
        return await self._read(self._get_response_sync, response_id, owner)

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
        return await self._read(self._list_responses_sync, after, limit, model, order == "desc", owner)

    def _get_response_sync(self, response_id: str, owner: str | None) -> StoredResponse:
        row = self._read_conn().execute(_SELECT_ONE, (response_id, owner)).fetchone()
        if row is None:
            raise response_not_found(response_id)
        return decode_response(row[0], row[1], row[2])

    def _list_responses_sync(
        self, after: str | None, limit: int, model: str | None, desc: bool, owner: str | None
    ) -> CompletionPage:
        conn = self._read_conn()
        where: list[str] = []
        args: list[Any] = []
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if after is not None:
            position = conn.execute(_SELECT_CURSOR, (after, owner)).fetchone()
            if position is None:
                raise unknown_response_after(after)
            where.append(f"(created, seq) {'<' if desc else '>'} (?, ?)")
            args.extend(position)
        direction = "DESC" if desc else "ASC"
        sql = (
            "SELECT response FROM responses"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY created {direction}, seq {direction} LIMIT ?"
        )
        rows = conn.execute(sql, (*args, limit + 1)).fetchall()
        items = [orjson.loads(blob) for (blob,) in rows[:limit]]
        return make_page(items, has_more=len(rows) > limit)
