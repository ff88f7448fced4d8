"""Limit counters: sliding windows, slots, all-or-nothing admissions, on both backends.

The SQLite backend is what ``--workers N`` share: two ``SqliteCounters`` on one file stand for
two worker processes here (the end-to-end test runs real ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaystack.gateway.counters import Ask, Counters, InProcessCounters, Window
from relaystack.gateway.counters_redis import RedisCounters
from relaystack.gateway.counters_sqlite import SqliteCounters
from relaystack.state.redis import RedisState
from support.backends import REDIS_URL, delete_redis_prefix, new_redis_prefix, redis_or_skip


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Counters, Counters, Clock]]:
    """Two views of the same counters (one process twice, two 'processes' on one file, or two
    instances on one Redis)."""
    clock = Clock()
    if request.param == "memory":
        one = InProcessCounters(clock)
        yield one, one, clock
        return
    if request.param == "redis":
        async for made in _redis_pair(clock):
            yield made
        return
    first, second = SqliteCounters(tmp_path / "limits.db", clock), SqliteCounters(tmp_path / "limits.db", clock)
    await first.start()
    await second.start()
    try:
        yield first, second, clock
    finally:
        await first.stop()
        await second.stop()


async def _redis_pair(clock: Clock) -> AsyncIterator[tuple[Counters, Counters, Clock]]:
    redis_or_skip()
    prefix = new_redis_prefix()
    states = [RedisState(REDIS_URL, prefix=prefix), RedisState(REDIS_URL, prefix=prefix)]
    counters = [RedisCounters(state, clock) for state in states]
    for state, counter in zip(states, counters, strict=True):
        await state.start()
        await counter.start()
    try:
        yield counters[0], counters[1], clock
    finally:
        for state, counter in zip(states, counters, strict=True):
            await counter.stop()
            await state.stop()
        delete_redis_prefix(prefix)


RPM = Window("k:rpm", 50, 60, "requests", "rpm")


async def test_200_at_once_against_50_per_minute_admit_exactly_50(pair: tuple[Counters, Counters, Clock]) -> None:
    first, second, _ = pair
    outcomes = await asyncio.gather(*((first if i % 2 else second).admit(Ask((RPM,))) for i in range(200)))
    assert sum(o.allowed for o in outcomes) == 50
    refused = [o for o in outcomes if not o.allowed]
    assert all(o.refused_by == RPM and o.retry_after_s >= 1 for o in refused)


async def test_the_window_slides_by_the_second(pair: tuple[Counters, Counters, Clock]) -> None:
    first, second, clock = pair
    window = Window("k2:rpm", 3, 60, "requests", "rpm")
    for _ in range(2):
        assert (await first.admit(Ask((window,)))).allowed
    clock.now += 30
    assert (await second.admit(Ask((window,)))).allowed
    refused = await first.admit(Ask((window,)))
    assert not refused.allowed and 29 <= refused.retry_after_s <= 31  # the first two leave in ~30 s
    clock.now += 31
    assert (await second.admit(Ask((window,)))).allowed  # the first two slid out, the third stays
    assert (await first.admit(Ask((window,)))).allowed
    assert not (await first.admit(Ask((window,)))).allowed


async def test_used_and_reset_are_reported(pair: tuple[Counters, Counters, Clock]) -> None:
    first, _, _ = pair
    window = Window("k3:rpm", 10, 60, "requests", "rpm")
    outcome = await first.admit(Ask((window,)))
    assert outcome.allowed and outcome.states[0].used == 1 and 59 <= outcome.states[0].reset_s <= 61


async def test_tokens_count_once_settled_and_block_when_over(pair: tuple[Counters, Counters, Clock]) -> None:
    first, second, clock = pair
    tpm = Window("k4:tpm", 100, 60, "tokens", "tpm")
    assert (await first.admit(Ask((tpm,)))).allowed
    await first.settle(((tpm, 60),), ())
    assert (await second.admit(Ask((tpm,)))).allowed  # 60 < 100
    await second.settle(((tpm, 60),), ())
    refused = await first.admit(Ask((tpm,)))  # 120 >= 100
    assert not refused.allowed and refused.refused_by == tpm
    clock.now += 61
    assert (await first.admit(Ask((tpm,)))).allowed


async def test_slots_are_shared_and_given_back(pair: tuple[Counters, Counters, Clock]) -> None:
    first, second, _ = pair
    ask = Ask((), (("k5:concurrent", 2),))
    assert (await first.admit(ask)).allowed
    assert (await second.admit(ask)).allowed
    refused = await first.admit(ask)
    assert not refused.allowed and refused.refused_by == "k5:concurrent"
    await second.settle((), ("k5:concurrent",))
    assert (await first.admit(ask)).allowed


async def test_an_admission_is_all_or_nothing(pair: tuple[Counters, Counters, Clock]) -> None:
    first, _, _ = pair
    rpm = Window("k6:rpm", 5, 60, "requests", "rpm")
    full_slot = ("k6:concurrent", 1)
    assert (await first.admit(Ask((rpm,), (full_slot,)))).allowed
    for _ in range(3):  # refused by the slot: must not use up the minute's requests
        assert not (await first.admit(Ask((rpm,), (full_slot,)))).allowed
    await first.settle((), ("k6:concurrent",))
    for _ in range(4):
        assert (await first.admit(Ask((rpm,)))).allowed
    assert not (await first.admit(Ask((rpm,)))).allowed


async def test_a_dead_process_slots_are_reclaimed(tmp_path: Path) -> None:
    """A worker killed while holding slots must not block the key for ever."""
    import sqlite3

    path = tmp_path / "limits.db"
    counters = SqliteCounters(path)
    await counters.start()
    try:
        conn = sqlite3.connect(path)
        conn.execute("INSERT INTO slots (name, pid, used) VALUES ('k7:concurrent', 999999999, 1)")  # no such pid
        conn.commit()
        conn.close()
        assert (await counters.admit(Ask((), (("k7:concurrent", 1),)))).allowed
    finally:
        await counters.stop()


async def test_a_dead_instance_slots_are_reclaimed_on_redis() -> None:
    """An instance killed while holding slots stops beating; after _STALE_S its slots are freed."""
    import redis

    async for first, second, clock in _redis_pair(Clock()):
        assert isinstance(first, RedisCounters) and isinstance(second, RedisCounters)
        ask = Ask((), (("k7:concurrent", 1),))
        assert (await first.admit(ask)).allowed
        assert not (await second.admit(ask)).allowed  # the first is alive: its slot holds
        await first.stop()  # it stops beating, as a killed instance would
        client = redis.Redis.from_url(REDIS_URL)
        try:
            key = next(k for k in client.scan_iter(match="relaystack-test-*x:instances")
                       if first.instance.encode() in client.hkeys(k))
            assert float(client.hget(key, first.instance)) == clock.now  # type: ignore[arg-type]
        finally:
            client.close()
        clock.now += 5
        assert not (await second.admit(ask)).allowed  # silent for 5 s: maybe slow, not dead
        clock.now += 6
        assert (await second.admit(ask)).allowed  # silent for 11 s: its slot is given back


def test_the_gates_fast_path_counts_like_admit_and_reports_the_tightest_windows() -> None:
    clock = Clock()
    counters = InProcessCounters(clock)
    loose, tight = Window("k8:rpm", 100, 60, "requests", "rpm"), Window("k8:m:rpm", 3, 60, "requests", "rpm")
    tpm = Window("k8:tpm", 1000, 60, "tokens", "tpm")
    ask = Ask((loose, tight, tpm), (("k8:concurrent", 10),))
    lane = counters.lane(ask)
    refused, requests, tokens = lane.admit()
    assert refused is None and requests is not None and tokens is not None
    assert requests[:2] == (tight, 1) and tokens[:2] == (tpm, 0) and 59 <= requests[2] <= 60
    lane.admit()
    lane.admit()
    refused, requests, tokens = lane.admit()
    assert refused is not None and not refused.allowed and refused.refused_by == tight and requests is None
    assert counters.held("k8:concurrent") == 3  # the refused one took no slot
