"""The shared PostgreSQL and Redis servers, for tests: a throw-away database / key prefix each.

Other developers use the same servers at the same time, so a test session never touches
anything it did not create: ``throwaway_database`` creates ``relaystack_test_<random>`` and
drops it; ``redis_prefix`` is ``relaystack-test-<random>:`` and every key under it is deleted.
Where a server is not reachable, the tests that need it are skipped with a one-line reason.

    RELAYSTACK_TEST_POSTGRES_DSN   default postgresql://postgres@127.0.0.1:5432/postgres
    RELAYSTACK_TEST_REDIS_URL      default redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis

__all__ = [
    "ADMIN_DSN",
    "REDIS_URL",
    "delete_redis_prefix",
    "dsn_for",
    "postgres_or_skip",
    "redis_or_skip",
    "reset_database",
    "throwaway_database",
]

ADMIN_DSN = os.environ.get("RELAYSTACK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("RELAYSTACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def postgres_or_skip() -> None:
    if not _reachable(ADMIN_DSN, 5432):
        pytest.skip(f"PostgreSQL not reachable at {urlsplit(ADMIN_DSN).netloc} (set RELAYSTACK_TEST_POSTGRES_DSN)")


def redis_or_skip() -> None:
    if not _reachable(REDIS_URL, 6379):
        pytest.skip(f"Redis not reachable at {urlsplit(REDIS_URL).netloc} (set RELAYSTACK_TEST_REDIS_URL)")


def dsn_for(database: str) -> str:
    parts = urlsplit(ADMIN_DSN)
    return parts._replace(path="/" + database).geturl()


async def _admin_async(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _admin(sql: str) -> None:
    """Runs in a thread of its own: callers may be inside a running event loop (async fixtures)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin_async(sql)).result()


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A new database, yielded as its DSN; dropped (connections and all) afterwards."""
    postgres_or_skip()
    name = "relaystack_test_" + secrets.token_hex(6)
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield dsn_for(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reset_database(dsn: str) -> None:
    """Empty the database (every relaystack table, the schema versions with them)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


def new_redis_prefix() -> str:
    return f"relaystack-test-{secrets.token_hex(6)}:"


def delete_redis_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
