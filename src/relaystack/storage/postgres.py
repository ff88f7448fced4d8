"""The PostgreSQL ``Store`` (``storage.backend: postgres``): several relaystack instances share it.

Driver: asyncpg, pooled, chosen by ``bench/pg_drivers.py`` (less client CPU per operation
than psycopg 3 on every workload the store has, half on batched writes).

Composition: one mixin per *table group* (``postgres_completions``, ``postgres_responses``,
``postgres_models``, ``postgres_keys``), each a small module with its ``TableGroup`` (its own
versioned migrations) and its methods. To add a group: write ``postgres_<group>.py`` with a
``TableGroup`` and a ``PgBase`` mixin (``PgWriter`` and a ``RowKind`` if its rows should be
group-committed), then add the mixin to ``PostgresStore``'s bases and its group to ``GROUPS``.
``start()`` migrates every group under an advisory lock (``postgres_schema``).

One background task, the monitor, holds its own connection (never starved by a busy pool)
and every ``probe_interval_s`` reads ``models_version`` and ``keys_version``: that is how other
instances' registrations and key changes become visible, and the health probe. When PostgreSQL goes away, requests get
503 ``store_unavailable`` at once (see ``postgres_base``); when the monitor reaches it again,
the store marks itself available and replaces the pool's dead connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from relaystack.errors import ConfigError
from relaystack.storage.postgres_base import PgSettings, StoreUnavailableError, is_connection_error, reason_of
from relaystack.storage.postgres_completions import COMPLETIONS, PgCompletions
from relaystack.storage.postgres_keys import KEYS, SELECT_VERSIONS, PgKeys
from relaystack.storage.postgres_models import MODELS, PgModels
from relaystack.storage.postgres_responses import RESPONSES, PgResponses
from relaystack.storage.postgres_schema import TableGroup, migrate

__all__ = ["GROUPS", "PgSettings", "PostgresStore", "StoreUnavailableError"]

log = logging.getLogger("relaystack.storage")

GROUPS: tuple[TableGroup, ...] = (COMPLETIONS, MODELS, RESPONSES, KEYS)


class _Connection(asyncpg.Connection):
    """No reset query when a connection returns to the pool.

    asyncpg's default runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every
    release: a round trip per batch and per read. The store takes no session advisory lock
    (migrations use a transaction-scoped one), opens no cursor, never LISTENs nor SETs; an open
    transaction is still rolled back by asyncpg on release.
    """

    def get_reset_query(self) -> str:
        return ""


class PostgresStore(PgCompletions, PgResponses, PgModels, PgKeys):
    commits_usage_with_completions = False  # one group statement per row kind, each committed on its own

    def __init__(self, settings: PgSettings) -> None:
        super().__init__(settings)
        self._init_writer()
        self._models_version = 0
        self._keys_version = 0
        self._monitor: asyncio.Task[None] | None = None
        self._monitor_conn: asyncpg.Connection | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._pool is not None or self._stopped:
            raise RuntimeError("PostgresStore.start() called twice; create a new store instead")
        self._pool = await self._open_pool()
        self._accepting = True
        self._start_writer()
        self._monitor = asyncio.get_running_loop().create_task(self._watch(), name="relaystack-pg-monitor")
        log.info("PostgreSQL store %s ready (pool of %d)", self.where, self.settings.pool_size)

    async def _open_pool(self) -> asyncpg.Pool:
        """Connect and migrate, waiting up to ``start_timeout_s`` for PostgreSQL (instances often
        start before it is up)."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        delay = 0.2
        while True:
            pool: asyncpg.Pool | None = None
            try:
                pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=0,  # no background "restore the floor" task logging tracebacks in an outage
                    max_size=self.settings.pool_size,
                    timeout=self.settings.connect_timeout_s,
                    command_timeout=self.settings.command_timeout_s,
                    server_settings={"application_name": "relaystack", **self.settings.server_settings},
                    connection_class=_Connection,
                )
                assert pool is not None
                async with pool.acquire(timeout=self.settings.connect_timeout_s) as conn:
                    await migrate(conn, GROUPS, self.where)  # type: ignore[arg-type]
                    self._note_versions(await conn.fetch(SELECT_VERSIONS))
                return pool
            except BaseException as exc:
                if pool is not None:
                    pool.terminate()
                if not isinstance(exc, Exception) or isinstance(exc, ConfigError):
                    raise
                if not is_connection_error(exc) or time.monotonic() + delay > deadline:
                    raise ConfigError(
                        f"cannot use the PostgreSQL store at {self.where}: {reason_of(exc)}. Check storage.dsn "
                        "(or RELAYSTACK_POSTGRES_DSN) and that PostgreSQL is running."
                    ) from None
                log.warning("PostgreSQL store %s not reachable yet (%s); retrying", self.where, type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._accepting = False
        await self._drain_writer()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        await self._close_monitor_conn()
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), self.settings.command_timeout_s)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                self._pool.terminate()

    # -- the monitor ---------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.probe_interval_s)
            try:
                versions = await self._probe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._close_monitor_conn()
                if is_connection_error(exc):
                    self._mark_down(exc)
                else:
                    log.warning("PostgreSQL store %s: probe failed: %s", self.where, type(exc).__name__)
                continue
            self._note_versions(versions)
            await self._mark_up()

    async def _probe(self) -> list[asyncpg.Record]:
        timeout = self.settings.connect_timeout_s
        if self._monitor_conn is None or self._monitor_conn.is_closed():
            self._monitor_conn = await self._connect_one("monitor")
        rows: list[asyncpg.Record] = await self._monitor_conn.fetch(SELECT_VERSIONS, timeout=timeout)
        return rows

    def _note_versions(self, rows: list[asyncpg.Record]) -> None:
        """The versions as read from ``relaystack_meta`` (newer than what this instance knew, or the same)."""
        for name, value in rows:
            if name == "models_version":
                self._models_version = max(self._models_version, int(value))
            elif name == "keys_version":
                self.observe_keys_version(int(value))

    async def _close_monitor_conn(self) -> None:
        conn, self._monitor_conn = self._monitor_conn, None
        if conn is not None:
            conn.terminate()  # never waits on a server that stopped answering
