"""Registered models on PostgreSQL, and the ``models_version`` every instance watches.

A model write and the bump of ``relaystack_meta.models_version`` are one transaction. Other
instances learn of it through the store's monitor, which re-reads that one row every
``probe_interval_s``: ``models_version()`` itself is an attribute read, cheap enough for the
hot path. So a registration reaches every instance within ``probe_interval_s`` plus the
registry's own one-second check.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from relaystack.storage._common import encode_model
from relaystack.storage.postgres_base import PgBase
from relaystack.storage.postgres_schema import TableGroup

__all__ = ["MODELS", "SELECT_MODELS_VERSION", "PgModels"]

MODELS = TableGroup("models", (
    """
    CREATE TABLE models (
        seq        BIGSERIAL,
        identifier TEXT PRIMARY KEY,
        model      BYTEA NOT NULL          -- as given to put_model, UTF-8 JSON
    );
    CREATE TABLE IF NOT EXISTS relaystack_meta (
        key   TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );
    INSERT INTO relaystack_meta (key, value) VALUES ('models_version', 0) ON CONFLICT (key) DO NOTHING;
    """,
))

SELECT_MODELS_VERSION = "SELECT value FROM relaystack_meta WHERE key = 'models_version'"
_UPSERT_MODEL = (
    "INSERT INTO models (identifier, model) VALUES ($1, $2) "
    "ON CONFLICT (identifier) DO UPDATE SET model = excluded.model"
)
_DELETE_MODEL = "DELETE FROM models WHERE identifier = $1"
_BUMP = "UPDATE relaystack_meta SET value = value + 1 WHERE key = 'models_version' RETURNING value"
_SELECT_MODELS = "SELECT model FROM models ORDER BY seq"


class PgModels(PgBase):
    _models_version: int

    async def put_model(self, model: dict[str, Any]) -> None:
        identifier, blob = encode_model(model)
        await self._call(lambda pool: self._write_model(pool, _UPSERT_MODEL, identifier, blob))

    async def delete_model(self, identifier: str) -> bool:
        return await self._call(lambda pool: self._write_model(pool, _DELETE_MODEL, identifier))

    async def _write_model(self, pool: asyncpg.Pool, sql: str, *args: Any) -> bool:
        timeout = self.settings.command_timeout_s
        async with pool.acquire(timeout=timeout) as conn, conn.transaction():
            status = await conn.execute(sql, *args, timeout=timeout)
            changed = not status.endswith(" 0")  # "INSERT 0 1", "DELETE 1", "DELETE 0"
            if changed:
                self._models_version = int(await conn.fetchval(_BUMP, timeout=timeout))
        return changed

    async def load_models(self) -> list[dict[str, Any]]:
        rows = await self._call(lambda pool: pool.fetch(_SELECT_MODELS, timeout=self.settings.command_timeout_s))
        return [orjson.loads(row[0]) for row in rows]

    def models_version(self) -> int:
        """The last version seen by this instance's writes or its monitor; no I/O."""
        if self._pool is None and not self._stopped:
            self._check()  # raises "not started"
        return self._models_version
