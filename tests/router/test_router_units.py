"""The router in-process, over scripted providers: attempts are counted, never timed."""

from __future__ import annotations

import asyncio

import pytest

from relaystack.errors import RelaystackError, UpstreamTimeoutError
from relaystack.providers.base import JsonReply
from router.scripted import (
    Rig,
    Scripted,
    drain,
    fail,
    refuse,
    stall,
    stream,
    two_deployments,
)


def served_by(reply: object) -> str:
    assert isinstance(reply, JsonReply)
    return str(reply.data["served_by"])


async def test_primary_down_the_secondary_serves_and_every_attempt_is_counted() -> None:
    primary, secondary = Scripted("primary", default=refuse()), Scripted("secondary")
    rig = Rig(two_deployments(retries=1), primary, secondary)
    reply, ctx = await rig.send()
    assert served_by(reply) == "secondary"
    assert ctx.attempts == 3 and len(primary.calls) == 2 and len(secondary.calls) == 1
    assert [(a.deployment, a.outcome, a.status, a.then) for a in ctx.attempt_log] == [
        ("primary", "error", 502, "retry"), ("primary", "error", 502, "fallback"), ("secondary", "ok", 200, None)]
    assert ctx.provider_id == ctx.deployment == "secondary"
    assert len(rig.waits) == 1  # one backoff before the retry, none before the fallback
    totals = rig.router.stats.totals()
    assert totals["attempt"] == 3 and totals["retry"] == 1 and totals["fallback"] == 1 and totals["failure"] == 2


async def test_a_client_error_is_neither_retried_nor_sent_elsewhere() -> None:
    primary, secondary = Scripted("primary", fail(400)), Scripted("secondary")
    rig = Rig(two_deployments(retries=2), primary, secondary)
    with pytest.raises(RelaystackError) as raised:
        await rig.send()
    assert raised.value.status_code == 400
    assert len(primary.calls) == 1 and secondary.calls == []
    assert raised.value.headers["x-relaystack-attempts"] == "1"
    assert "x-should-retry" not in raised.value.headers
    assert rig.router.stats.totals().get("cooldown") is None


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_429_and_5xx_are_retried_on_the_same_deployment(status: int) -> None:
    primary, secondary = Scripted("primary", fail(status)), Scripted("secondary")
    rig = Rig(two_deployments(retries=1), primary, secondary)
    reply, ctx = await rig.send()
    assert served_by(reply) == "primary" and ctx.attempts == 2 and secondary.calls == []


async def test_retry_on_is_configurable() -> None:
    primary, secondary = Scripted("primary", default=fail(500)), Scripted("secondary")
    rig = Rig(two_deployments(retries=2, retry_on=["connect", 503]), primary, secondary)
    with pytest.raises(RelaystackError) as raised:
        await rig.send()
    assert raised.value.status_code == 500 and len(primary.calls) == 1 and secondary.calls == []


async def test_out_of_credit_429_goes_to_the_next_deployment_without_retrying() -> None:
    primary, secondary = Scripted("primary", default=fail(429, code="insufficient_quota")), Scripted("secondary")
    rig = Rig(two_deployments(retries=3), primary, secondary)
    reply, _ctx = await rig.send()
    assert served_by(reply) == "secondary" and len(primary.calls) == 1 and rig.waits == []


async def test_every_deployment_failing_returns_the_last_error_with_the_attempts() -> None:
    primary, secondary = Scripted("primary", default=fail(503)), Scripted("secondary", default=fail(502))
    rig = Rig(two_deployments(retries=1), primary, secondary)
    with pytest.raises(RelaystackError) as raised:
        await rig.send()
    error = raised.value
    assert error.status_code == 502
    assert error.headers["x-relaystack-attempts"] == "4"
    assert error.headers["x-relaystack-deployment"] == "secondary"
    assert error.headers["x-should-retry"] == "false"  # the OpenAI SDK must not retry on top
    assert "4 attempts failed, on primary, secondary" in error.message
    assert rig.router.stats.totals()["exhausted"] == 1


async def test_retry_after_is_honoured_exactly_when_under_the_cap() -> None:
    primary, secondary = Scripted("primary", fail(429, retry_after=2.5)), Scripted("secondary")
    rig = Rig(two_deployments(retries=1, retry_after_max_s=5), primary, secondary)
    reply, _ctx = await rig.send()
    assert served_by(reply) == "primary" and rig.waits == [2.5]


async def test_retry_after_over_the_cap_falls_back_at_once_and_holds_the_deployment() -> None:
    primary, secondary = Scripted("primary", default=fail(429, retry_after=120)), Scripted("secondary")
    rig = Rig(two_deployments(retries=3, retry_after_max_s=5), primary, secondary)
    reply, _ctx = await rig.send()
    assert served_by(reply) == "secondary" and rig.waits == [] and len(primary.calls) == 1
    # the upstream said 120 s: the deployment is skipped that long, not for the shorter cooldown
    health = await rig.router.describe()
    assert health["m"]["primary"]["state"] == "cooling_down"
    rig.clock.advance(60)
    for _ in range(5):
        await rig.send()
    assert len(primary.calls) == 1
    rig.clock.advance(61)
    await rig.send()
    assert len(primary.calls) == 2  # the probe


async def test_backoff_is_exponential_with_full_jitter_and_bounded() -> None:
    primary = Scripted("primary", default=fail(503))
    rig = Rig({"models": [{"model_id": "m", "routing": {"retries": 6, "backoff": {"initial_s": 1, "max_s": 4}},
                           "deployments": [{"provider_id": "primary"}]}]}, primary)
    with pytest.raises(RelaystackError):
        await rig.send()
    assert len(primary.calls) == 7 and len(rig.waits) == 6
    ceilings = [1, 2, 4, 4, 4, 4]
    assert all(0 <= w <= c for w, c in zip(rig.waits, ceilings, strict=True))
    assert len(set(rig.waits)) == 6  # jittered, not lock-step


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "shared"])
async def test_cooldown_one_failed_attempt_per_window_across_100_requests(shared: bool) -> None:
    primary, secondary = Scripted("primary", default=refuse()), Scripted("secondary")
    rig = Rig(two_deployments(retries=1, cooldown={"failures": 1, "window_s": 10, "cooldown_s": 30}),
              primary, secondary, shared=shared)
    reply, _ctx = await rig.send()
    assert served_by(reply) == "secondary" and len(primary.calls) == 1  # opened: no retry on it
    results = await asyncio.gather(*(rig.send() for _ in range(99)))
    assert all(served_by(r) == "secondary" for r, _ in results)
    assert all(c.attempts == 1 for _, c in results)
    assert len(primary.calls) == 1
    # window after window, concurrent requests included: one probe each, never a herd
    for window in range(1, 4):
        rig.clock.advance(31)
        results = await asyncio.gather(*(rig.send() for _ in range(25)))
        assert all(served_by(r) == "secondary" for r, _ in results)
        assert len(primary.calls) == 1 + window
    assert rig.router.stats.of("m", "primary")["probe"] == 3
    assert rig.router.stats.of("m", "primary")["cooldown"] == 4


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "shared"])
async def test_k_failures_within_the_window_open_the_cooldown(shared: bool) -> None:
    primary, secondary = Scripted("primary", default=fail(500)), Scripted("secondary")
    rig = Rig(two_deployments(retries=0, cooldown={"failures": 3, "window_s": 10, "cooldown_s": 30}),
              primary, secondary, shared=shared)
    for _ in range(2):
        await rig.send()
        rig.clock.advance(20)  # failures further apart than the window never add up
    assert (await rig.router.describe())["m"]["primary"]["state"] == "healthy"
    for _ in range(3):
        await rig.send()
    assert (await rig.router.describe())["m"]["primary"]["state"] == "cooling_down"
    calls = len(primary.calls)
    await rig.send()
    assert len(primary.calls) == calls == 5


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "shared"])
async def test_half_open_probe_restores_the_primary(shared: bool) -> None:
    primary, secondary = Scripted("primary", refuse(), refuse()), Scripted("secondary")
    rig = Rig(two_deployments(retries=0, cooldown={"failures": 1, "cooldown_s": 30}), primary, secondary,
              shared=shared)
    await rig.send()
    rig.clock.advance(31)
    reply, _ = await rig.send()  # the probe fails: cooling again
    assert served_by(reply) == "secondary" and len(primary.calls) == 2
    assert (await rig.router.describe())["m"]["primary"]["state"] == "cooling_down"
    rig.clock.advance(31)
    health = await rig.router.describe()
    assert health["m"]["primary"]["state"] == "half_open"
    reply, _ctx = await rig.send()  # the primary is back: the probe succeeds
    assert served_by(reply) == "primary"
    assert (await rig.router.describe())["m"]["primary"]["state"] == "healthy"
    for _ in range(5):
        reply, _ = await rig.send()
        assert served_by(reply) == "primary"


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "shared"])
async def test_only_one_probe_while_it_is_in_flight(shared: bool) -> None:
    primary = Scripted("primary", refuse(), stall(0.05))
    secondary = Scripted("secondary")
    rig = Rig(two_deployments(retries=0, cooldown={"failures": 1, "cooldown_s": 30}), primary, secondary,
              shared=shared)
    await rig.send()
    rig.clock.advance(31)
    results = await asyncio.gather(*(rig.send() for _ in range(20)))
    assert len(primary.calls) == 2  # the failure, then exactly one probe
    assert sorted(served_by(r) for r, _ in results).count("primary") == 1


async def test_a_lone_deployment_is_never_cooled_down() -> None:
    primary = Scripted("primary", default=fail(503))
    rig = Rig({"routing": {"retries": 0, "cooldown": {"failures": 1}},
               "models": [{"model_id": "m", "provider_id": "primary"}]}, primary)
    for _ in range(5):
        with pytest.raises(RelaystackError):
            await rig.send()
    assert len(primary.calls) == 5


@pytest.mark.parametrize("shared", [False, True], ids=["in_process", "shared"])
async def test_every_deployment_cooling_down_is_a_fast_503_with_retry_after(shared: bool) -> None:
    primary, secondary = Scripted("primary", default=refuse()), Scripted("secondary", default=refuse())
    rig = Rig(two_deployments(retries=0, cooldown={"failures": 1, "cooldown_s": 30}), primary, secondary,
              shared=shared)
    with pytest.raises(RelaystackError):
        await rig.send()
    with pytest.raises(RelaystackError) as raised:
        await rig.send()
    assert raised.value.status_code == 503 and raised.value.code == "no_healthy_deployment"
    assert raised.value.headers["Retry-After"] == "30"
    assert len(primary.calls) == len(secondary.calls) == 1


async def test_the_deadline_bounds_every_attempt_and_wait() -> None:
    primary, secondary = Scripted("primary", default=stall(30)), Scripted("secondary")
    rig = Rig(two_deployments(retries=3, deadline_s=0.1), primary, secondary)
    with pytest.raises(UpstreamTimeoutError) as raised:
        await rig.send()
    assert "deadline" in raised.value.message
    # the first attempt was cut at the deadline; nothing started after it
    assert len(primary.calls) == 1 and primary.cancelled == 1 and secondary.calls == []


async def test_first_byte_timeout_moves_to_the_next_deployment() -> None:
    primary, secondary = Scripted("primary", default=stall(30)), Scripted("secondary")
    rig = Rig(two_deployments(retries=0, timeouts={"first_byte_s": 0.05}), primary, secondary)
    reply, ctx = await rig.send()
    assert served_by(reply) == "secondary" and primary.cancelled == 1
    assert ctx.attempt_log[0].error_code == "upstream_timeout"


async def test_a_stream_failing_before_its_first_event_is_retried_elsewhere() -> None:
    primary = Scripted("primary", default=stream(stall_first=30))
    secondary = Scripted("secondary", default=stream(3))
    rig = Rig(two_deployments(retries=0, timeouts={"first_byte_s": 0.05}), primary, secondary)
    reply, ctx = await rig.send(stream=True)
    blocks = await drain(reply)
    assert len(blocks) == 3 and b"s-secondary" in blocks[0]
    assert ctx.attempts == 2 and primary.open_streams == 0 and primary.cancelled == 1


async def test_a_stream_cut_before_its_first_event_is_retried() -> None:
    primary = Scripted("primary", stream(cut_after=0), default=stream(3))
    rig = Rig(two_deployments(retries=1), primary, Scripted("secondary"))
    reply, ctx = await rig.send(stream=True)
    assert len(await drain(reply)) == 3 and ctx.attempts == 2 and len(primary.calls) == 2


async def test_no_retry_once_the_first_event_is_out() -> None:
    primary = Scripted("primary", default=stream(5, cut_after=2))
    secondary = Scripted("secondary", default=stream(5))
    rig = Rig(two_deployments(retries=3), primary, secondary)
    reply, ctx = await rig.send(stream=True)
    seen = []
    with pytest.raises(RelaystackError) as raised:
        async for block in reply.blocks:  # type: ignore[union-attr]
            seen.append(block)
    assert len(seen) == 2 and raised.value.code == "upstream_unreachable"
    assert len(primary.calls) == 1 and secondary.calls == [] and ctx.attempts == 1
    assert ctx.attempt_log[0].outcome == "error"  # the attempt is marked failed after the fact


async def test_a_stream_stalled_mid_way_ends_within_the_idle_timeout() -> None:
    primary = Scripted("primary", default=stream(5, stall_after=(2, 30)))
    rig = Rig(two_deployments(retries=3, timeouts={"idle_s": 0.05}), primary, Scripted("secondary"))
    reply, _ctx = await rig.send(stream=True)
    seen = []
    with pytest.raises(UpstreamTimeoutError) as raised:
        async for block in reply.blocks:  # type: ignore[union-attr]
            seen.append(block)
    assert len(seen) == 2 and "idle_s" in raised.value.message
    await reply.aclose()
    assert primary.cancelled == 1 and primary.open_streams == 0 and len(primary.calls) == 1


async def test_a_stream_outliving_its_total_timeout_ends_with_an_error() -> None:
    primary = Scripted("primary", default=stream(50, stall_after=(1, 30)))
    rig = Rig(two_deployments(timeouts={"total_s": 0.05, "idle_s": 10}), primary, Scripted("secondary"))
    reply, _ = await rig.send(stream=True)
    with pytest.raises(UpstreamTimeoutError) as raised:
        await drain(reply)
    assert "total_s" in raised.value.message and primary.cancelled == 1


async def test_weighted_split_over_1000_requests() -> None:
    a, b = Scripted("a"), Scripted("b")
    rig = Rig({"models": [{"model_id": "m", "routing": {"strategy": "weighted"}, "deployments": [
        {"provider_id": "a", "weight": 3}, {"provider_id": "b", "weight": 1}]}]}, a, b, seed=12345)
    for _ in range(1000):
        await rig.send()
    # binomial(1000, 0.75): sd 13.7; 5 sd either side
    assert 682 <= len(a.calls) <= 818 and len(a.calls) + len(b.calls) == 1000


async def test_weighted_fallback_reaches_the_other_deployment() -> None:
    a, b = Scripted("a", default=refuse()), Scripted("b")
    rig = Rig({"models": [{"model_id": "m", "routing": {"strategy": "weighted", "retries": 0},
                           "deployments": [{"provider_id": "a", "weight": 1000}, {"provider_id": "b"}]}]}, a, b)
    reply, _ctx = await rig.send()
    assert served_by(reply) == "b"


async def test_least_outstanding_prefers_the_idle_deployment() -> None:
    hold = asyncio.Event()
    a = Scripted("a", stream(3, hold=hold), stream(3, hold=hold))
    b = Scripted("b", default=stream(3, hold=hold))
    rig = Rig({"models": [{"model_id": "m", "routing": {"strategy": "least-outstanding"}, "deployments": [
        {"provider_id": "a"}, {"provider_id": "b"}]}]}, a, b)
    first, _ = await rig.send(stream=True)  # both idle: the first listed
    assert len(a.calls) == 1
    others = [await rig.send(stream=True) for _ in range(3)]
    # a has one open stream: b until b has as many, then they alternate
    assert [c.provider_id for _, c in others] == ["b", "a", "b"]
    hold.set()
    for reply, _ in [(first, None), *others]:
        await drain(reply)
    _done, ctx = await rig.send()
    assert ctx.provider_id == "a"  # all idle again: back to the first listed
    assert all(t.outstanding == 0 for t in rig.router._plans["m"].targets)


async def test_priority_order_is_kept() -> None:
    a, b, c = Scripted("a", default=refuse()), Scripted("b", default=refuse()), Scripted("c")
    rig = Rig({"models": [{"model_id": "m", "routing": {"retries": 0}, "deployments": [
        {"provider_id": "c", "priority": 5}, {"provider_id": "b", "priority": 1}, {"provider_id": "a"}]}]}, a, b, c)
    _reply, ctx = await rig.send()
    assert [x.deployment for x in ctx.attempt_log] == ["a", "b", "c"]


async def test_max_attempts_from_the_client_caps_the_request() -> None:
    primary, secondary = Scripted("primary", default=refuse()), Scripted("secondary")
    rig = Rig(two_deployments(retries=2), primary, secondary)
    with pytest.raises(RelaystackError) as raised:
        await rig.send(max_attempts=1)
    assert raised.value.headers["x-relaystack-attempts"] == "1" and secondary.calls == []
    assert "x-should-retry" not in raised.value.headers


async def test_faults_target_one_deployment() -> None:
    primary, secondary = Scripted("primary"), Scripted("secondary")
    rig = Rig(two_deployments(), primary, secondary)
    await rig.send(fault="deployment=secondary;status=503")
    await rig.send(fault="status=429")
    assert [c.fault for c in primary.calls] == [None, "status=429"]
    with pytest.raises(RelaystackError) as raised:
        await rig.send(fault="deployment=secundary;status=503")
    assert raised.value.status_code == 400 and "primary, secondary" in raised.value.message


async def test_the_wrong_model_type_is_400() -> None:
    rig = Rig(two_deployments(), Scripted("primary"), Scripted("secondary"))
    with pytest.raises(RelaystackError) as raised:
        await rig.send(operation="embeddings")
    assert raised.value.status_code == 400 and raised.value.code == "model_type_mismatch"


async def test_a_cancelled_probe_lets_the_next_request_probe() -> None:
    primary = Scripted("primary", refuse(), stall(30))
    secondary = Scripted("secondary")
    rig = Rig(two_deployments(retries=0, cooldown={"failures": 1, "cooldown_s": 30}), primary, secondary)
    await rig.send()
    rig.clock.advance(31)
    probe = asyncio.ensure_future(rig.send())
    for _ in range(100):  # until the probe is in flight
        if len(primary.calls) == 2:
            break
        await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    reply, _ = await rig.send()
    assert served_by(reply) == "primary" and len(primary.calls) == 3
    assert all(t.outstanding == 0 for t in rig.router._plans["m"].targets)


async def test_plain_models_are_relayed_once_without_a_routing_section() -> None:
    primary = Scripted("primary", fail(503))
    rig = Rig({"models": [{"model_id": "m", "provider_id": "primary"}]}, primary)
    with pytest.raises(RelaystackError) as raised:
        await rig.send()
    assert len(primary.calls) == 1 and raised.value.headers["x-relaystack-attempts"] == "1"
    _reply, ctx = await rig.send()
    assert ctx.attempts == 1 and ctx.attempt_log == [] and ctx.provider_id == "primary"


async def test_a_global_routing_section_routes_plain_models_too() -> None:
    primary = Scripted("primary", fail(503))
    rig = Rig({"routing": {"retries": 1}, "models": [{"model_id": "m", "provider_id": "primary"}]}, primary)
    reply, ctx = await rig.send()
    assert served_by(reply) == "primary" and ctx.attempts == 2 and len(rig.waits) == 1



async def test_a_client_slow_to_read_is_not_an_idle_upstream() -> None:
    primary = Scripted("primary", default=stream(4))
    rig = Rig(two_deployments(timeouts={"idle_s": 0.02}), primary, Scripted("secondary"))
    reply, _ = await rig.send(stream=True)
    seen = []
    async for block in reply.blocks:  # type: ignore[union-attr]
        seen.append(block)
        await asyncio.sleep(0.05)  # longer than idle_s, but relaystack is not waiting on the upstream
    assert len(seen) == 4


async def test_the_end_passing_while_the_client_reads_ends_the_stream_at_the_next_wait() -> None:
    primary = Scripted("primary", default=stream(4))
    rig = Rig(two_deployments(timeouts={"total_s": 0.02}), primary, Scripted("secondary"))
    reply, _ = await rig.send(stream=True)
    seen = []
    with pytest.raises(UpstreamTimeoutError, match="total_s"):
        async for block in reply.blocks:  # type: ignore[union-attr]
            seen.append(block)
            await asyncio.sleep(0.05)
    assert len(seen) == 1


async def test_a_stream_never_read_still_releases_its_deployment() -> None:
    a = Scripted("a", default=stream(3))
    rig = Rig({"models": [{"model_id": "m", "routing": {"strategy": "least-outstanding"}, "deployments": [
        {"provider_id": "a"}, {"provider_id": "b"}]}]}, a, Scripted("b"))
    reply, _ = await rig.send(stream=True)
    assert rig.router._plans["m"].targets[0].outstanding == 1
    await reply.aclose()  # what the API does when the client left before the first block went out
    assert rig.router._plans["m"].targets[0].outstanding == 0


async def test_the_connect_timeout_reaches_the_upstream_request() -> None:
    from relaystack.providers.base import CallContext, ModelEntry
    from relaystack.providers.openai_compat import OpenAICompatProvider
    from relaystack.upstream.base import UpstreamRequest

    sent: list[UpstreamRequest] = []

    class Capture:
        async def send(self, request: UpstreamRequest) -> object:
            sent.append(request)
            raise RelaystackError("stop here")

        async def aclose(self) -> None: ...

    provider = OpenAICompatProvider("p", {"base_url": "http://127.0.0.1:9/v1", "api_key": "k",
                                          "connect_timeout_s": 10, "read_timeout_s": 99}, Capture())  # type: ignore[arg-type]
    entry = ModelEntry("m", "p", "up-m")
    for connect in (None, 0.5):
        with pytest.raises(RelaystackError):
            call = CallContext(entry, "m", connect_timeout_s=connect)
            await provider.chat_completion({"model": "m", "messages": []}, call)
    assert [(r.timeouts.connect, r.timeouts.read) for r in sent] == [(10, 99), (0.5, 99)]


async def test_deployment_timeouts_override_the_models() -> None:
    primary = Scripted("primary")
    rig = Rig({"models": [{"model_id": "m", "routing": {"timeouts": {"connect_s": 3, "idle_s": 9}}, "deployments": [
        {"provider_id": "primary", "timeouts": {"connect_s": 1}}, {"provider_id": "secondary"}]}]},
        primary, Scripted("secondary"))
    await rig.send()
    assert primary.calls[0].connect_timeout_s == 1
    assert rig.router._plans["m"].targets[0].timeouts.idle_s == 9
    assert rig.router._plans["m"].targets[1].timeouts.connect_s == 3
