"""SharedCooldowns across instances on Redis: what one cools, every instance skips; failures add
up across instances; one probe in all; an instance that loses Redis decides alone.

The router's own cooldown tests run against SharedCooldowns too (test_router_units.py, ``shared``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from relaystack.router.cooldown import CooldownRule
from relaystack.router.cooldown_shared import SharedCooldowns
from relaystack.state import LocalState, StateUnavailableError
from relaystack.state.redis import RedisState
from support.backends import REDIS_URL, delete_redis_prefix, new_redis_prefix, redis_or_skip
from support.waiting import eventually

RULE = CooldownRule(failures=3, window_s=10, cooldown_s=30)
KEY = "m|primary"


@pytest.fixture
async def instances() -> AsyncIterator[Callable[[], Any]]:
    """A factory of SharedCooldowns, each on its own RedisState (another instance) on one prefix."""
    redis_or_skip()
    prefix = new_redis_prefix()
    states: list[RedisState] = []

    async def make() -> SharedCooldowns:
        state = RedisState(REDIS_URL, prefix=prefix, probe_interval_s=0.1)
        await state.start()
        states.append(state)
        return SharedCooldowns(state)

    yield make
    for state in states:
        await state.stop()
    delete_redis_prefix(prefix)


async def test_a_deployment_cooled_on_one_instance_is_skipped_by_the_others_within_a_second(
    instances: Callable[[], Any],
) -> None:
    one, two, three = await instances(), await instances(), await instances()
    for instance in (two, three):  # seen healthy first: their views are fresh, only the broadcast can tell them
        assert await instance.admit(KEY, 5) == ("admit", 0.0)
    opened = await one.failed(KEY, RULE, probe=False, hold_s=30)
    assert opened is not None
    started = time.monotonic()
    for instance in (two, three):
        assert await eventually(lambda i=instance: i._views[KEY].until == opened, 1.0)  # type: ignore[misc]
        verdict, until = await instance.admit(KEY, 5)
        assert verdict == "skip" and until == opened
    assert time.monotonic() - started < 1.0
    assert (await three.snapshot([KEY]))[KEY].state == "cooling_down"


async def test_failures_on_different_instances_add_up(instances: Callable[[], Any]) -> None:
    one, two = await instances(), await instances()
    assert await one.failed(KEY, RULE, probe=False) is None
    assert await two.failed(KEY, RULE, probe=False) is None
    opened = await one.failed(KEY, RULE, probe=False)  # the third failure, counted across both
    assert opened is not None
    assert await eventually(lambda: two._views[KEY].until == opened, 1.0)


async def test_an_instance_started_during_a_cooldown_reads_it(instances: Callable[[], Any]) -> None:
    one = await instances()
    opened = await one.failed(KEY, RULE, probe=False, hold_s=30)
    late = await instances()
    assert await late.admit(KEY, 5) == ("skip", opened)


async def test_one_probe_across_instances_and_its_success_closes_it_everywhere(instances: Callable[[], Any]) -> None:
    one, two, three = await instances(), await instances(), await instances()
    await one.failed(KEY, RULE, probe=False, hold_s=0.3)
    await asyncio.sleep(0.4)  # the cooldown ended: half-open
    verdicts = await asyncio.gather(*(i.admit(KEY, 5) for i in (one, two, three) for _ in range(5)))
    assert [v for v, _ in verdicts].count("probe") == 1
    prober = (one, two, three)[[v for v, _ in verdicts].index("probe") // 5]
    await prober.succeeded(KEY, probe=True)
    for instance in (one, two, three):
        assert await eventually(lambda i=instance: i._views[KEY].until == 0.0, 1.0)  # type: ignore[misc]
        assert await instance.admit(KEY, 5) == ("admit", 0.0)


async def test_a_failed_probe_reopens_and_the_next_end_is_probed_again(instances: Callable[[], Any]) -> None:
    one, two = await instances(), await instances()
    await one.failed(KEY, RULE, probe=False, hold_s=0.2)
    await asyncio.sleep(0.3)
    assert (await two.admit(KEY, 60))[0] == "probe"  # a long lease
    reopened = await two.failed(KEY, CooldownRule(1, 10, 0.2), probe=True)
    assert reopened is not None
    await asyncio.sleep(0.3)
    assert await eventually(lambda: one._views[KEY].until == reopened, 1.0)
    assert (await one.admit(KEY, 60))[0] == "probe"  # the failed probe's lease is gone


class _Unreachable(LocalState):
    """A shared state whose server is away: every operation fails as RedisState's do."""

    async def set(self, key: str, value: bytes, *, ttl_s: float, only_if_absent: bool = False) -> bool:
        raise StateUnavailableError("away")

    async def get(self, key: str) -> bytes | None:
        raise StateUnavailableError("away")

    async def add(self, key: str, amount: int, *, window_s: float) -> float:
        raise StateUnavailableError("away")

    async def delete(self, key: str) -> bool:
        raise StateUnavailableError("away")

    async def publish(self, channel: str, message: bytes) -> None:
        raise StateUnavailableError("away")


async def test_without_the_shared_state_an_instance_cools_down_alone(caplog: pytest.LogCaptureFixture) -> None:
    cooldowns = SharedCooldowns(_Unreachable())
    assert await cooldowns.admit(KEY, 5) == ("admit", 0.0)
    assert await cooldowns.failed(KEY, RULE, probe=False) is None
    assert await cooldowns.failed(KEY, RULE, probe=False) is None
    opened = await cooldowns.failed(KEY, RULE, probe=False)
    assert opened is not None
    assert await cooldowns.admit(KEY, 5) == ("skip", opened)
    assert sum("decides alone" in r.message for r in caplog.records) == 1  # said once, not per call
