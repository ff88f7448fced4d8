"""RedisState across instances: one limit for all, broadcasts to all, gaps reported, outages 503."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import redis

from relaystack.state import StateUnavailableError
from relaystack.state.redis import RedisState, describe_url
from support.backends import REDIS_URL
from support.tcp_proxy import TcpProxy
from support.waiting import eventually


async def test_a_limit_holds_across_three_instances(redis_states: Callable[[], RedisState]) -> None:
    instances = [redis_states() for _ in range(3)]
    for instance in instances:
        await instance.start()
    takes = await asyncio.gather(*(instances[i % 3].take("rpm:shared", 1, limit=50, window_s=60)
                                   for i in range(200)))
    assert sum(t.allowed for t in takes) == 50
    for instance in instances:
        assert await instance.usage("rpm:shared", window_s=60) == 50


async def test_a_broadcast_reaches_every_instance_within_a_second(redis_states: Callable[[], RedisState]) -> None:
    instances = [redis_states() for _ in range(3)]
    for instance in instances:
        await instance.start()
    received: list[list[bytes | None]] = [[] for _ in instances]
    for instance, inbox in zip(instances, received, strict=True):
        instance.subscribe("keys", inbox.append)
    await asyncio.sleep(0.2)  # the listeners' PSUBSCRIBE is in place
    await instances[1].publish("keys", b"revoked:key_9")
    assert await eventually(lambda: all(received), 1.0)
    assert received == [[b"revoked:key_9"]] * 3


async def test_a_lost_listener_connection_tells_subscribers_they_may_have_missed_messages(
    redis_states: Callable[[], RedisState], redis_prefix: str
) -> None:
    instance = redis_states()
    await instance.start()
    inbox: list[bytes | None] = []
    instance.subscribe("keys", inbox.append)
    await asyncio.sleep(0.2)
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        ours = [c for c in admin.client_list(_type="pubsub") if c.get("name") == f"relaystack:{redis_prefix}"]
        assert ours
        for client in ours:
            admin.client_kill_filter(_id=client["id"])
    finally:
        admin.close()
    assert await eventually(lambda: None in inbox, 10)
    await asyncio.sleep(0.2)
    await instance.publish("keys", b"after")
    assert await eventually(lambda: b"after" in inbox, 10)
    assert inbox[-1] == b"after"


async def test_losing_redis_gives_state_unavailable_then_recovers(redis_prefix: str) -> None:
    target = urlsplit(REDIS_URL)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    state = RedisState(f"redis://127.0.0.1:{proxy.port}/0", prefix=redis_prefix, probe_interval_s=0.1,
                       timeout_s=1.0)
    await state.start()
    try:
        assert (await state.take("rpm:x", 1, limit=5, window_s=60)).allowed
        await proxy.cut()
        with pytest.raises(StateUnavailableError) as caught:
            await asyncio.wait_for(state.take("rpm:x", 1, limit=5, window_s=60), 10)
        assert caught.value.status_code == 503 and caught.value.code == "state_unavailable"
        assert state.health()["status"] == "unavailable"
        await proxy.start()
        assert await eventually(lambda: state.health()["status"] == "OK", 10)
        assert (await state.take("rpm:x", 1, limit=5, window_s=60)).used == 2
    finally:
        await state.stop()
        await proxy.cut()


def test_urls_are_described_without_the_password() -> None:
    assert describe_url("redis://:hunter2@cache.example:6380/2") == "cache.example:6380/2"
