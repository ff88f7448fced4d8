"""What every PostgreSQL table group shares: the pool, the availability state, error mapping.

Errors fall in two kinds, and a client sees each one as such:

- *the database is unreachable* (connection refused or reset, server shutting down, too many
  connections, a timeout): ``StoreUnavailableError``, a 503 with code ``store_unavailable`` and
  ``Retry-After``. The store marks itself unavailable at once, so further requests fail fast
  instead of each waiting on a connect timeout; the monitor (``postgres.PostgresStore``) probes
  every ``probe_interval_s`` and marks it available again when PostgreSQL answers.
- anything else from PostgreSQL (a value it refuses): a 500 whose message holds no SQL, no row
  and no DSN; the details go to the server log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from relaystack.errors import RelaystackError, ServiceUnavailableError
from relaystack.storage._common import StoreClosedError
from relaystack.storage.base import StoreHealth
from relaystack.storage.pg_dsn import describe_dsn, normalize_dsn

__all__ = [
    "PgBase",
    "PgSettings",
    "StoreUnavailableError",
    "describe_dsn",
    "fetch_page",
    "is_connection_error",
    "reason_of",
]

log = logging.getLogger("relaystack.storage")

_T = TypeVar("_T")

# SQLSTATE classes that mean "the server, not this statement": 08 connection exception,
# 53 insufficient resources (too many connections, disk full), 57 operator intervention
# (shutdown, crash recovery), 58 system error.
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")


class StoreUnavailableError(ServiceUnavailableError):
    """PostgreSQL cannot be reached right now; nothing was written or read. Retry shortly."""

    default_code = "store_unavailable"


@dataclass(frozen=True, slots=True)
class PgSettings:
    dsn: str
    pool_size: int = 10
    # a connection attempt that takes longer than this counts as "unreachable"
    connect_timeout_s: float = 5.0
    # any one statement; past it the request gets a 503 instead of hanging
    command_timeout_s: float = 10.0
    # how often the monitor probes (and refreshes the models version)
    probe_interval_s: float = 0.5
    # group-committing writers, each with its own connection (see postgres_completions)
    writers: int = 1
    # start() keeps trying this long for PostgreSQL to come up, then fails with a clear message
    start_timeout_s: float = 30.0
    server_settings: dict[str, str] = field(default_factory=dict)


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError | asyncpg.exceptions.InterfaceError):
        return True
    if isinstance(exc, asyncpg.exceptions.PostgresConnectionError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state[:2] in _UNAVAILABLE_CLASSES
    return False


class PgBase:
    """The pool and the availability state; table groups (mixins) run their SQL through ``_call``."""

    def __init__(self, settings: PgSettings) -> None:
        self.settings = settings
        # checked (ConfigError naming the fix) and as asyncpg parses it; never logged nor shown
        self.dsn = normalize_dsn(settings.dsn)
        self.where = describe_dsn(settings.dsn)
        self._pool: asyncpg.Pool | None = None
        self._accepting = False
        self._stopped = False
        self._available = True
        self._down_since: float | None = None
        self._last_error = ""
        self._unavailable_error: StoreUnavailableError | None = None
        self._health = StoreHealth("postgres", None, {"database": self.where})

    # -- availability -------------------------------------------------------------------
    def health(self) -> StoreHealth:
        return self._health

    def _mark_down(self, exc: BaseException) -> None:
        reason = reason_of(exc)
        if self._available or reason != self._last_error:
            log.error("PostgreSQL store %s is unavailable: %s", self.where, reason)
        if self._available:
            self._down_since = time.monotonic()
        self._available = False
        self._last_error = reason
        self._unavailable_error = StoreUnavailableError(
            f"The PostgreSQL store ({self.where}) is unreachable ({reason}); nothing was stored or read. "
            "Retry shortly; GET /v1/health shows the store's state.",
            headers={"Retry-After": "1"},
        )
        self._health = StoreHealth(
            "postgres", self._unavailable_error, {"database": self.where, "error": reason}
        )

    async def _mark_up(self) -> None:
        if self._available:
            return
        down_for = time.monotonic() - (self._down_since or time.monotonic())
        log.warning("PostgreSQL store %s is reachable again (after %.1f s)", self.where, down_for)
        self._available = True
        self._down_since = None
        self._last_error = ""
        self._unavailable_error = None
        self._health = StoreHealth("postgres", None, {"database": self.where})
        if self._pool is not None:
            # connections opened before the outage are dead: replace them on their next use
            await self._pool.expire_connections()

    def _check(self) -> asyncpg.Pool:
        """The pool, or the error a request gets right now (stopped, not started, unreachable)."""
        if not self._accepting or self._pool is None:
            raise StoreClosedError(
                "The store is stopped (the server is shutting down); nothing was written or read."
                if self._stopped
                else "The store is not started; call start() first."
            )
        if self._unavailable_error is not None:
            raise self._unavailable_error
        return self._pool

    async def _call(self, fn: Callable[[asyncpg.Pool], Awaitable[_T]]) -> _T:
        """Run one operation on the pool and map what PostgreSQL raises onto the error tree."""
        pool = self._check()
        try:
            return await fn(pool)
        except RelaystackError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: BaseException) -> RelaystackError:
        if is_connection_error(exc):
            self._mark_down(exc)
            assert self._unavailable_error is not None
            return self._unavailable_error
        log.error("PostgreSQL store %s: %s: %s", self.where, type(exc).__name__, exc)
        return RelaystackError("Storing failed with a database error (details in the server log).")

    async def _connect_one(self, role: str) -> asyncpg.Connection:
        """A connection of its own, outside the pool (the writer's, the monitor's)."""
        return await asyncpg.connect(
            self.dsn, timeout=self.settings.connect_timeout_s,
            command_timeout=self.settings.command_timeout_s,
            server_settings={"application_name": f"relaystack-{role}", **self.settings.server_settings},
        )


async def fetch_page(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, table: str, columns: str, *,
    after: str | None, limit: int, model: str | None, desc: bool, timeout: float, owner: str | None = None,
) -> list[asyncpg.Record] | None:
    """Up to ``limit + 1`` rows of ``table`` (one more tells whether there are more) in
    ``(created, seq)`` order, after the row whose id is ``after``; None if there is no such row.
    The cursor is a position, not an offset: rows written meanwhile never shift a page.
    ``owner`` (a table with an ``owner`` column): only that owner's rows, the cursor's included."""
    where: list[str] = []
    args: list[Any] = []
    if model is not None:
        args.append(model)
        where.append(f"model = ${len(args)}")
    if owner is not None:
        args.append(owner)
        where.append(f"owner = ${len(args)}")
    if after is not None:
        cursor_sql = f"SELECT created, seq FROM {table} WHERE id = $1" + (" AND owner = $2" if owner else "")
        position = await conn.fetchrow(cursor_sql, after, *((owner,) if owner else ()), timeout=timeout)
        if position is None:
            return None
        args.extend(position)
        where.append(f"(created, seq) {'<' if desc else '>'} (${len(args) - 1}, ${len(args)})")
    direction = "DESC" if desc else "ASC"
    args.append(limit + 1)
    sql = (
        f"SELECT {columns} FROM {table}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY created {direction}, seq {direction} LIMIT ${len(args)}"
    )
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args, timeout=timeout)
    return rows


def reason_of(exc: BaseException) -> str:
    """A short, secret-free reason: the error class and PostgreSQL's own message, first line.

    Only PostgreSQL's messages (which name a user or a database, never a password) and the
    system's are quoted: a client-side error (asyncpg parsing the DSN, say) may quote the DSN."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    if not isinstance(exc, asyncpg.PostgresError):
        return type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
