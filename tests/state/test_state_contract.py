"""The SharedState interface, run against LocalState and RedisState alike (the ``state`` fixture)."""

from __future__ import annotations

import asyncio
import math

from relaystack.state import SharedState


async def test_take_admits_exactly_the_limit_under_concurrency(state: SharedState) -> None:
    takes = await asyncio.gather(*(state.take("rpm:k", 1, limit=50, window_s=60) for _ in range(200)))
    assert sum(t.allowed for t in takes) == 50
    refused = [t for t in takes if not t.allowed]
    assert all(t.remaining == 0 and 0 < t.retry_after_s <= 120 for t in refused)
    assert await state.usage("rpm:k", window_s=60) == 50


async def test_amounts_count_toward_the_limit_and_refusals_add_nothing(state: SharedState) -> None:
    assert (await state.take("tpm:k", 600, limit=1000, window_s=60)).allowed
    refused = await state.take("tpm:k", 500, limit=1000, window_s=60)
    assert not refused.allowed and refused.used == 600
    assert (await state.take("tpm:k", 400, limit=1000, window_s=60)).remaining == 0
    too_big = await state.take("tpm:other", 2000, limit=1000, window_s=60)
    assert not too_big.allowed and math.isinf(too_big.retry_after_s)


async def test_add_is_unconditional_and_keys_are_separate(state: SharedState) -> None:
    assert await state.add("tokens:a", 700, window_s=60) == 700
    assert await state.add("tokens:a", 700, window_s=60) == 1400
    assert await state.usage("tokens:b", window_s=60) == 0
    assert not (await state.take("tokens:a", 1, limit=1000, window_s=60)).allowed


async def test_values_expire_and_only_if_absent_is_a_claim(state: SharedState) -> None:
    assert await state.set("cooldown:d1", b"open", ttl_s=0.3)
    assert await state.get("cooldown:d1") == b"open"
    assert not await state.set("cooldown:d1", b"other", ttl_s=5, only_if_absent=True)
    await asyncio.sleep(0.5)
    assert await state.get("cooldown:d1") is None
    assert await state.set("cooldown:d1", b"again", ttl_s=5, only_if_absent=True)
    assert await state.delete("cooldown:d1") is True
    assert await state.delete("cooldown:d1") is False
    assert await state.get("cooldown:missing") is None


async def test_published_messages_reach_subscribers_until_they_unsubscribe(state: SharedState) -> None:
    got: list[bytes | None] = []
    arrived = asyncio.Event()

    def on_message(message: bytes | None) -> None:
        got.append(message)
        arrived.set()

    unsubscribe = state.subscribe("keys", on_message)
    other: list[bytes | None] = []
    state.subscribe("models", other.append)
    await state.publish("keys", b"revoked:key_1")
    await asyncio.wait_for(arrived.wait(), 5)
    assert got == [b"revoked:key_1"] and other == []
    unsubscribe()
    await state.publish("keys", b"revoked:key_2")
    await asyncio.sleep(0.3)
    assert got == [b"revoked:key_1"]


async def test_health_says_ok(state: SharedState) -> None:
    assert state.health()["status"] == "OK"
    assert state.health()["backend"] == state.backend
