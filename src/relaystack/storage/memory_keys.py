"""The ``KeyStore`` part of ``MemoryStore`` (mixed in): keys and usage totals in process memory.

Records are kept serialized, like in SQLite, so a stored record is a snapshot of the caller's dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from relaystack.storage.base import UsageRow
from relaystack.storage.sqlite_keys import encode_key

__all__ = ["KeyRows", "MemoryKeys"]

_UsageKey = tuple[str, str, str, str]  # (day, key_id, model, provider)


class KeyRows:
    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}  # insertion order is creation order
        self.version = 0
        self.usage: dict[_UsageKey, UsageRow] = {}


class MemoryKeys:
    _key_rows: KeyRows

    if TYPE_CHECKING:  # provided by MemoryStore

        def _check_open(self) -> None: ...

    async def put_key(self, record: dict[str, Any]) -> None:
        key_id, blob = encode_key(record)
        self._check_open()
        self._key_rows.keys[key_id] = blob
        self._key_rows.version += 1

    async def get_key(self, key_id: str) -> dict[str, Any] | None:
        self._check_open()
        blob = self._key_rows.keys.get(key_id)
        return None if blob is None else dict(orjson.loads(blob))

    async def list_keys(self) -> list[dict[str, Any]]:
        self._check_open()
        return [orjson.loads(blob) for blob in self._key_rows.keys.values()]

    def keys_version(self) -> int:
        return self._key_rows.version

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        self._add_usage_now(rows)

    def _add_usage_now(self, rows: Sequence[UsageRow]) -> None:
        self._check_open()
        for row in rows:
            where = (row.day, row.key_id, row.model, row.provider)
            old = self._key_rows.usage.get(where)
            if old is not None:
                row = old._replace(
                    requests=old.requests + row.requests,
                    prompt_tokens=old.prompt_tokens + row.prompt_tokens,
                    completion_tokens=old.completion_tokens + row.completion_tokens,
                    cached_tokens=old.cached_tokens + row.cached_tokens,
                    cost=old.cost + row.cost,
                )
            self._key_rows.usage[where] = row

    async def usage_totals(self, *, since: str, until: str, key_id: str | None = None) -> list[UsageRow]:
        self._check_open()
        return [
            row for where, row in sorted(self._key_rows.usage.items())
            if since <= where[0] <= until and key_id in (None, where[1])
        ]
