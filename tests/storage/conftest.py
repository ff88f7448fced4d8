"""Fixtures for the storage tests: a started store of either implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaystack.storage.base import Store
from relaystack.storage.memory import MemoryStore
from relaystack.storage.sqlite import SqliteStore


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


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[Store]:
    """The contract tests run against both implementations."""
    impl: Store = SqliteStore(db_path) if request.param == "sqlite" else MemoryStore()
    await impl.start()
    yield impl
    await impl.stop()
