"""Fixtures for the gateway tests: a module-wide server with server.auth on, on each store.

``sqlite``: one process on the default SQLite store. ``postgres``: the PostgreSQL store with
Redis (a throw-away database and key prefix), as every instance of a cluster runs: keys and usage
in PostgreSQL, limits on Redis, key changes broadcast. Skipped with a one-line reason when
PostgreSQL or Redis is unreachable.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from gateway_helpers import PROVIDER_KEY, GatewayStack, start_gateway

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.backends import REDIS_URL, delete_redis_prefix, new_redis_prefix, redis_or_skip, throwaway_database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    home = tmp_path_factory.mktemp("gateway")
    with ExitStack() as cleanup:
        env, storage = shared_backends(request.param, cleanup)
        fake = FakeTogether((PROVIDER_KEY, DEFAULT_API_KEY)).start()
        cleanup.callback(fake.stop)
        stack = start_gateway(home, fake, env=env, storage=storage)
        cleanup.callback(stack.server.stop)
        yield stack


def shared_backends(kind: str, cleanup: ExitStack) -> tuple[dict[str, str], dict[str, object] | None]:
    """(environment, storage section) for a server on ``kind``: nothing for sqlite; a throw-away
    PostgreSQL database and Redis prefix (removed by ``cleanup``) for postgres."""
    if kind == "sqlite":
        return {}, None
    redis_or_skip()
    dsn = cleanup.enter_context(throwaway_database())
    prefix = new_redis_prefix()
    cleanup.callback(delete_redis_prefix, prefix)
    env = {"RELAYSTACK_POSTGRES_DSN": dsn, "RELAYSTACK_REDIS_URL": REDIS_URL, "RELAYSTACK_REDIS_PREFIX": prefix,
           "RELAYSTACK_KEY_SECRET": secrets.token_hex(24)}
    return env, {"backend": "postgres", "dsn": "${env.RELAYSTACK_POSTGRES_DSN}"}
