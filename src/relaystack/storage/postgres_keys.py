"""Virtual keys and usage totals on PostgreSQL (``KeyStore``): the table group, writes, reads.

Same contract and rows as ``sqlite_keys``: a key is one JSON record (never its secret, only
``secret_hash``, the HMAC the gateway made under the server secret), usage is one row of totals
per (day, key, model, provider).

- A key write and the bump of ``relaystack_meta.keys_version`` are one transaction.
  ``keys_version()`` is an attribute read (it runs on every authenticated request); it moves
  with this instance's own writes, with the store's monitor (which reads every version each
  ``probe_interval_s``) and, with Redis, with ``observe_keys_version`` (the gateway broadcasts
  each change), so a key revoked through one instance fails in every other within a second.
- Usage rows go through the store's group-committing writer: the rows of one batch that share a
  (day, key, model, provider) are added up first, then ONE ``INSERT ... ON CONFLICT DO UPDATE``
  adds the batch to the totals. A request's usage commits next to its stored completion, before
  the client gets the last byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from relaystack.storage.base import UsageRow
from relaystack.storage.postgres_schema import TableGroup
from relaystack.storage.postgres_writer import PgWriter, RowKind
from relaystack.storage.sqlite_keys import encode_key

__all__ = ["KEYS", "USAGE_ROWS", "PgKeys"]

KEYS = TableGroup("keys", (
    """
    CREATE TABLE api_keys (
        seq    BIGSERIAL,
        id     TEXT PRIMARY KEY,
        record BYTEA NOT NULL  -- UTF-8 JSON; secret_hash only, never a key's secret
    );
    CREATE INDEX api_keys_order ON api_keys (seq);
    CREATE TABLE usage_daily (
        day               TEXT   NOT NULL,  -- YYYY-MM-DD, UTC
        key_id            TEXT   NOT NULL,
        model             TEXT   NOT NULL,
        provider          TEXT   NOT NULL,
        requests          BIGINT NOT NULL,
        prompt_tokens     BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cached_tokens     BIGINT NOT NULL,
        cost              DOUBLE PRECISION NOT NULL,  -- US dollars
        PRIMARY KEY (day, key_id, model, provider)
    );
    CREATE INDEX usage_daily_by_key ON usage_daily (key_id, day);
    CREATE TABLE IF NOT EXISTS relaystack_meta (
        key   TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );
    INSERT INTO relaystack_meta (key, value) VALUES ('keys_version', 0) ON CONFLICT (key) DO NOTHING;
    """,
))


def _add_rows(earlier: tuple[Any, ...], later: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*earlier[:4], *(a + b for a, b in zip(earlier[4:], later[4:], strict=True)))


USAGE_ROWS = RowKind("usage_daily", """
INSERT INTO usage_daily
    (day, key_id, model, provider, requests, prompt_tokens, completion_tokens, cached_tokens, cost)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
                     $8::bigint[], $9::float8[])
ON CONFLICT (day, key_id, model, provider) DO UPDATE SET
    requests = usage_daily.requests + excluded.requests,
    prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,
    cached_tokens = usage_daily.cached_tokens + excluded.cached_tokens,
    cost = usage_daily.cost + excluded.cost
""", merge=_add_rows, identity=4)

SELECT_VERSIONS = "SELECT key, value FROM relaystack_meta WHERE key IN ('models_version', 'keys_version')"
_UPSERT_KEY = (
    "INSERT INTO api_keys (id, record) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET record = excluded.record"
)
_BUMP = "UPDATE relaystack_meta SET value = value + 1 WHERE key = 'keys_version' RETURNING value"
_SELECT_KEY = "SELECT record FROM api_keys WHERE id = $1"
_SELECT_KEYS = "SELECT record FROM api_keys ORDER BY seq"
_SELECT_USAGE = """
SELECT day, key_id, model, provider, requests, prompt_tokens, completion_tokens, cached_tokens, cost
FROM usage_daily WHERE day >= $1 AND day <= $2{key_filter}
ORDER BY day, key_id, model, provider
"""


class PgKeys(PgWriter):
    _keys_version: int = 0

    async def put_key(self, record: dict[str, Any]) -> None:
        key_id, blob = encode_key(record)
        await self._call(lambda pool: self._write_key(pool, key_id, blob))

    async def _write_key(self, pool: asyncpg.Pool, key_id: str, blob: bytes) -> None:
        timeout = self.settings.command_timeout_s
        async with pool.acquire(timeout=timeout) as conn, conn.transaction():
            await conn.execute(_UPSERT_KEY, key_id, blob, timeout=timeout)
            self.observe_keys_version(int(await conn.fetchval(_BUMP, timeout=timeout)))

    async def get_key(self, key_id: str) -> dict[str, Any] | None:
        timeout = self.settings.command_timeout_s
        blob = await self._call(lambda pool: pool.fetchval(_SELECT_KEY, key_id, timeout=timeout))
        return None if blob is None else dict(orjson.loads(blob))

    async def list_keys(self) -> list[dict[str, Any]]:
        rows = await self._call(lambda pool: pool.fetch(_SELECT_KEYS, timeout=self.settings.command_timeout_s))
        return [orjson.loads(row[0]) for row in rows]

    def keys_version(self) -> int:
        """The newest version this instance knows of (its writes, the monitor, broadcasts); no I/O."""
        return self._keys_version

    def observe_keys_version(self, version: int) -> None:
        """Another instance says the keys are at ``version`` now (older news changes nothing)."""
        if version > self._keys_version:
            self._keys_version = version

    def add_usage(self, rows: Sequence[UsageRow]) -> asyncio.Future[None]:
        if len(rows) == 1:
            return self._enqueue(USAGE_ROWS, tuple(rows[0]))
        return asyncio.ensure_future(_all_of([self._enqueue(USAGE_ROWS, tuple(row)) for row in rows]))

    async def usage_totals(self, *, since: str, until: str, key_id: str | None = None) -> list[UsageRow]:
        sql = _SELECT_USAGE.format(key_filter=" AND key_id = $3" if key_id is not None else "")
        args: tuple[Any, ...] = (since, until) if key_id is None else (since, until, key_id)
        timeout = self.settings.command_timeout_s
        rows = await self._call(lambda pool: pool.fetch(sql, *args, timeout=timeout))
        return [UsageRow(*row) for row in rows]


async def _all_of(futures: list[asyncio.Future[None]]) -> None:
    await asyncio.gather(*futures)
