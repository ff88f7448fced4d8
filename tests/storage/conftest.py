"""Fixtures for the storage tests: a started store of each implementation.

The PostgreSQL store runs on a database created for this test session (and dropped after
it), emptied before each test; skipped with a one-line reason when PostgreSQL is unreachable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from relaystack.storage.base import Store
from relaystack.storage.memory import MemoryStore
from relaystack.storage.postgres import PgSettings, PostgresStore
from relaystack.storage.sqlite import SqliteStore
from support.backends import reset_database, throwaway_database

BACKENDS = ["sqlite", "memory", "postgres"]


@pytest.fixture(scope="session")
def pg_session_dsn() -> Iterator[str]:
    with throwaway_database() as dsn:
        yield dsn


@pytest.fixture
async def pg_dsn(pg_session_dsn: str) -> str:
    """The session's database, empty: every test starts from a fresh schema."""
    await reset_database(pg_session_dsn)
    return pg_session_dsn


@pytest.fixture
async def pg_store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(PgSettings(pg_dsn, pool_size=4, probe_interval_s=0.1))
    await store.start()
    yield store
    await store.stop()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # a directory that does not exist yet: start() must create it
    return tmp_path / "home" / "relaystack.db"


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(db_path)
    await store.start()
    yield store
    await store.stop()


async def make_store(backend: str, db_path: Path, request: pytest.FixtureRequest) -> Store:
    if backend == "sqlite":
        return SqliteStore(db_path)
    if backend == "memory":
        return MemoryStore()
    dsn = request.getfixturevalue("pg_session_dsn")  # (skips when PostgreSQL is unreachable)
    await reset_database(dsn)
    return PostgresStore(PgSettings(dsn, pool_size=4, probe_interval_s=0.1))


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[Store]:
    """The contract tests run against every implementation."""
    impl = await make_store(request.param, db_path, request)
    await impl.start()
    yield impl
    await impl.stop()
