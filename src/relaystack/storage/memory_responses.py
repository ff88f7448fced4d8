"""The ``ResponseStore`` part of ``MemoryStore`` (mixed in): same ordering, cursors and errors as SQLite."""

from __future__ import annotations

import bisect
import itertools
from typing import TYPE_CHECKING, Any, Literal

import orjson

from relaystack.storage._common import make_page, validate_list_args
from relaystack.storage._responses_common import (
    decode_response,
    encode_response,
    response_not_found,
    unknown_response_after,
)
from relaystack.storage.base import CompletionPage, RenderedResponse, StoredResponse

__all__ = ["MemoryResponses", "ResponseRows"]

_Key = tuple[int, int]  # (created, seq)


class ResponseRows:
    """Rows kept sorted on (created, seq) and serialized, so a stored row is a snapshot."""

    def __init__(self) -> None:
        self.keys: list[_Key] = []
        # key -> (model, response, items, messages, owner)
        self.rows: dict[_Key, tuple[str, bytes, bytes, bytes, str | None]] = {}
        self.by_id: dict[str, _Key] = {}
        self.seq = itertools.count(1)


class MemoryResponses:
    if TYPE_CHECKING:  # provided by MemoryStore
        _responses: ResponseRows

        def _check_open(self) -> None: ...

    async def put_response(
        self,
        response: dict[str, Any] | RenderedResponse,
        input_items: list[Any],
        messages: list[Any],
        *,
        owner: str | None = None,
    ) -> None:
        response_id, created, model, response_json, items_json, messages_json, owner = encode_response(
            response, input_items, messages, owner
        )
        self._check_open()
        table = self._responses
        old = table.by_id.get(response_id)
        seq = next(table.seq) if old is None else old[1]  # a replaced row keeps its seq
        if old is not None:
            self._forget(old)
        key = (created, seq)
        bisect.insort(table.keys, key)
        table.rows[key] = (model, response_json, items_json, messages_json, owner)
        table.by_id[response_id] = key

    def _forget(self, key: _Key) -> None:
        table = self._responses
        table.keys.pop(bisect.bisect_left(table.keys, key))
        del table.rows[key]

    def _owned(self, response_id: str, owner: str | None) -> _Key | None:
        """The row's key, if it exists and ``owner`` (None: anyone) may see it."""
        key = self._responses.by_id.get(response_id)
        if key is None or (owner is not None and self._responses.rows[key][4] != owner):
            return None
        return key

    async def get_response(self, response_id: str, *, owner: str | None = None) -> StoredResponse:
        self._check_open()
        key = self._owned(response_id, owner)
        if key is None:
            raise response_not_found(response_id)
        _model, response_json, items_json, messages_json, _owner = self._responses.rows[key]
        return decode_response(response_json, items_json, messages_json)

    async def delete_response(self, response_id: str, *, owner: str | None = None) -> bool:
        self._check_open()
        key = self._owned(response_id, owner)
        if key is None:
            return False
        del self._responses.by_id[response_id]
        self._forget(key)
        return True

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
        self._check_open()
        table = self._responses
        keys = table.keys if order == "asc" else table.keys[::-1]
        start = 0
        if after is not None:
            position = self._owned(after, owner)
            if position is None:
                raise unknown_response_after(after)
            index = bisect.bisect_right(table.keys, position)
            start = index if order == "asc" else len(table.keys) - index + 1
        picked: list[dict[str, Any]] = []
        has_more = False
        for key in itertools.islice(keys, start, None):
            row_model, response_json, _items, _messages, row_owner = table.rows[key]
            if (model is not None and row_model != model) or (owner is not None and row_owner != owner):
                continue
            if len(picked) == limit:
                has_more = True
                break
            picked.append(orjson.loads(response_json))
        return make_page(picked, has_more)
