"""A ``Store`` in process memory: for ``storage.db_path: ":memory:"`` and for tests.

Same contract as ``SqliteStore`` (ordering, cursors, replace-in-place, errors), minus what
only a file can give: nothing survives the process, and with ``--workers N`` every worker has
its own models and completions (``models_version()`` only sees this process's changes).
Rows are kept serialized, like in SQLite, so a stored row is a snapshot of the caller's dict.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any, Literal

import orjson

from relaystack.storage._common import (
    CompletionRow,
    StoreClosedError,
    completion_not_found,
    encode_completion,
    encode_model,
    encode_stream,
    make_item,
    make_page,
    unknown_after,
    validate_list_args,
)
from relaystack.storage.base import CompletionPage, StoreHealth, UsageRow
from relaystack.storage.memory_keys import KeyRows, MemoryKeys
from relaystack.storage.memory_responses import MemoryResponses, ResponseRows

__all__ = ["MemoryStore"]

# (created, seq) -> the position of a row; rows are kept sorted on it
_Key = tuple[int, int]


class MemoryStore(MemoryResponses, MemoryKeys):  # responses: memory_responses.py; keys and usage: memory_keys.py
    commits_usage_with_completions = True

    def __init__(self) -> None:
        self._keys: list[_Key] = []  # sorted
        self._rows: dict[_Key, tuple[str, str, bytes, bytes]] = {}  # key -> (id, model, completion, messages)
        self._by_id: dict[str, _Key] = {}
        self._seq = itertools.count(1)
        self._models: dict[str, bytes] = {}
        self._models_version = 0
        self._responses = ResponseRows()  # the ResponseStore part (memory_responses.py)
        self._key_rows = KeyRows()  # the KeyStore part (memory_keys.py)
        self._state: Literal["new", "open", "stopped"] = "new"

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError("MemoryStore.start() called twice; create a new store instead")
        self._state = "open"

    async def stop(self) -> None:
        self._state = "stopped"

    def health(self) -> StoreHealth:
        return StoreHealth("memory")

    def _check_open(self) -> None:
        if self._state != "open":
            raise StoreClosedError(
                "The store is stopped (the server is shutting down); nothing was written or read."
                if self._state == "stopped"
                else "The store is not started; call start() first."
            )

    # -- chat completions -------------------------------------------------------------------
    async def put_completion(
        self, completion: dict[str, Any], input_messages: list[Any], raw: bytes | None = None,
        usage: UsageRow | None = None,
    ) -> None:
        self._put(encode_completion(completion, input_messages, raw))
        if usage is not None:  # no await between the two: both or neither
            self._add_usage_now((usage,))

    async def put_stream(
        self, completion_id: str, created: int, model: str, events: bytes, input_messages: list[Any],
        usage: UsageRow | None = None,
    ) -> None:
        self._put(encode_stream(completion_id, created, model, events, input_messages))
        if usage is not None:
            self._add_usage_now((usage,))

    def _put(self, row: CompletionRow) -> None:
        completion_id, created, model, completion_json, messages_json = row
        self._check_open()
        old = self._by_id.get(completion_id)
        seq = next(self._seq) if old is None else old[1]  # a replaced row keeps its seq
        if old is not None:
            self._keys.pop(bisect.bisect_left(self._keys, old))
            del self._rows[old]
        key = (created, seq)
        bisect.insort(self._keys, key)
        self._rows[key] = (completion_id, model, completion_json, messages_json)
        self._by_id[completion_id] = key

    async def list_completions(
        self,
        *,
        after: str | None = None,
        limit: int = 20,
        model: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> CompletionPage:
        validate_list_args(limit, order)
        self._check_open()
        keys = self._keys if order == "asc" else self._keys[::-1]
        start = 0
        if after is not None:
            position = self._by_id.get(after)
            if position is None:
                raise unknown_after(after)
            index = bisect.bisect_right(self._keys, position)
            start = index if order == "asc" else len(self._keys) - index + 1
        picked: list[dict[str, Any]] = []
        has_more = False
        for key in itertools.islice(keys, start, None):
            _id, row_model, completion_json, messages_json = self._rows[key]
            if model is not None and row_model != model:
                continue
            if len(picked) == limit:
                has_more = True
                break
            picked.append(make_item(_id, key[0], completion_json, messages_json, row_model))
        return make_page(picked, has_more)

    async def get_completion(self, completion_id: str) -> dict[str, Any]:
        self._check_open()
        key = self._by_id.get(completion_id)
        if key is None:
            raise completion_not_found(completion_id)
        _id, row_model, completion_json, messages_json = self._rows[key]
        return make_item(_id, key[0], completion_json, messages_json, row_model)

    # -- models ----------------------------------------------------------------------------
    async def put_model(self, model: dict[str, Any]) -> None:
        identifier, blob = encode_model(model)
        self._check_open()
        self._models[identifier] = blob
        self._models_version += 1

    async def delete_model(self, identifier: str) -> bool:
        self._check_open()
        if self._models.pop(identifier, None) is None:
            return False
        self._models_version += 1
        return True

    async def load_models(self) -> list[dict[str, Any]]:
        self._check_open()
        return [orjson.loads(blob) for blob in self._models.values()]

    def models_version(self) -> int:
        return self._models_version
