"""Fixtures for the shared-state tests: LocalState, and RedisState on a random key prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from relaystack.state import LocalState, SharedState
from relaystack.state.redis import RedisState
from support.backends import REDIS_URL, delete_redis_prefix, new_redis_prefix, redis_or_skip
from support.waiting import clear_of_window_edge


@pytest.fixture(autouse=True)
def _clear_of_a_minute_edge() -> None:
    """Counts of a 60 s window are read exactly only away from the window's edge."""
    clear_of_window_edge(60.0)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    redis_or_skip()
    prefix = new_redis_prefix()
    yield prefix
    delete_redis_prefix(prefix)


@pytest.fixture
async def redis_states(redis_prefix: str) -> AsyncIterator[Callable[[], RedisState]]:
    """A factory of started RedisStates on one prefix: each one is "another instance"."""
    made: list[RedisState] = []

    def make() -> RedisState:
        state = RedisState(REDIS_URL, prefix=redis_prefix, probe_interval_s=0.1)
        made.append(state)
        return state

    yield make
    for state in made:
        await state.stop()


@pytest.fixture(params=["local", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    """The interface tests run against both implementations."""
    if request.param == "local":
        impl: SharedState = LocalState()
        await impl.start()
        yield impl
        await impl.stop()
        return
    prefix = request.getfixturevalue("redis_prefix")  # (skips when Redis is unreachable)
    impl = RedisState(REDIS_URL, prefix=prefix, probe_interval_s=0.1)
    await impl.start()
    yield impl
    await impl.stop()
