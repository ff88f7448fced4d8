"""Deployments, retries, fallbacks and cooldowns through a real `relaystack run`, over fake upstreams.

Two fake Togethers on 127.0.0.1 (``a`` and ``b``) and a port nobody listens on (``dead``) serve
models with several deployments. Failures are injected in the fakes; what is checked is who
answered, how many attempts it took (response headers, the fakes' request counts, /v1/health),
never how long it took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import orjson
import pytest

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.server import RunningServer, free_port, start_server, write_config

UPSTREAM_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello, world!"}]
QUICK = {"backoff": {"initial_s": 0.01, "max_s": 0.05}, "retry_after_max_s": 1}
NEVER_COOL = {"failures": 1000}


def provider(provider_id: str, base_url: str) -> dict[str, Any]:
    return {"provider_id": provider_id, "provider_type": "remote::together",
            "config": {"api_key": DEFAULT_API_KEY, "base_url": base_url, "refresh_models": False}}


def routed(model_id: str, names: tuple[str, ...], **routing: Any) -> dict[str, Any]:
    return {"model_id": model_id, "model_type": "llm", "routing": {**QUICK, **routing},
            "deployments": [{"name": n, "provider_id": n, "provider_model_id": UPSTREAM_MODEL, "priority": i}
                            for i, n in enumerate(names)]}


@dataclass
class Rig:
    a: FakeTogether
    b: FakeTogether
    server: RunningServer

    def post(self, model: str, *, stream: bool = False, headers: dict[str, str] | None = None) -> httpx.Response:
        body = {"model": model, "messages": HELLO, **({"stream": True} if stream else {})}
        return httpx.post(self.server.base_url + CHAT, json=body, headers=headers, timeout=30)

    def health(self, model: str) -> dict[str, Any]:
        return httpx.get(self.server.base_url + "/v1/health").json()["deployments"][model]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def rig_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    home = tmp_path_factory.mktemp("router-e2e")
    a, b = FakeTogether().start(), FakeTogether().start()
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    config = {
        "version": 2,
        "providers": {"inference": [provider("a", a.base_url), provider("b", b.base_url), provider("dead", dead)]},
        "models": [
            routed("down", ("dead", "b"), retries=1, cooldown={"failures": 1, "cooldown_s": 600}),
            routed("retrying", ("a", "b"), retries=1, cooldown=NEVER_COOL,
                   timeouts={"first_byte_s": 2, "idle_s": 2}),
            routed("probed", ("a", "b"), retries=0, cooldown={"failures": 1, "cooldown_s": 1}),
            routed("bounded", ("a", "b"), retries=5, deadline_s=1.5, cooldown=NEVER_COOL),
            routed("held", ("a", "b"), retries=1, cooldown=NEVER_COOL),
            {**routed("weighted", ("a", "b"), strategy="weighted", cooldown=NEVER_COOL),
             "deployments": [{"provider_id": "a", "provider_model_id": UPSTREAM_MODEL, "weight": 3},
                             {"provider_id": "b", "provider_model_id": UPSTREAM_MODEL, "weight": 1}]},
            routed("least", ("a", "b"), strategy="least-outstanding", cooldown=NEVER_COOL),
        ],
        "storage": {"inference_store": False},
    }
    server = start_server(write_config(home / "run.yaml", config), home=home)
    try:
        yield Rig(a, b, server)
    finally:
        server.stop()
        a.stop()
        b.stop()


@pytest.fixture
def rig(rig_module: Rig) -> Rig:
    rig_module.a.reset()
    rig_module.b.reset()
    return rig_module


def events(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


def test_primary_down_the_secondary_serves_then_100_requests_skip_it(rig: Rig) -> None:
    response = rig.post("down")
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "down"
    assert response.headers["x-relaystack-provider"] == "b"
    assert response.headers["x-relaystack-deployment"] == "b"
    # refused once: that one failure opened the cooldown, so no retry on it either
    assert response.headers["x-relaystack-attempts"] == "2"
    for _ in range(100):
        again = rig.post("down")
        assert again.headers["x-relaystack-provider"] == "b" and again.headers["x-relaystack-attempts"] == "1"
    health = rig.health("down")
    assert health["dead"]["state"] == "cooling_down" and health["dead"]["until"]
    # skipped: by the first request's retry, then by the 100 others
    assert health["dead"]["counts"]["failure"] == 1 and health["dead"]["counts"]["skipped"] == 101
    assert health["b"]["state"] == "healthy"
    assert len(rig.b.requests_to(CHAT)) == 101
    assert "attempt 1 on deployment dead (provider dead) failed" in rig.server.log()


def test_a_5xx_is_retried_on_the_same_deployment(rig: Rig) -> None:
    rig.a.fail_next(503)
    response = rig.post("retrying")
    assert response.status_code == 200 and response.headers["x-relaystack-provider"] == "a"
    assert response.headers["x-relaystack-attempts"] == "2"
    assert len(rig.a.requests_to(CHAT)) == 2 and rig.b.requests == []


def test_every_attempt_leaves_a_log_line(rig: Rig) -> None:
    """A failed attempt is a warning naming the deployment; every attempt is an access line too,
    and the request's own line counts them."""
    seen = len(rig.server.log())
    rig.a.fail_next(503, times=2)
    response = rig.post("retrying")
    assert response.status_code == 200 and response.headers["x-relaystack-attempts"] == "3"

    def new_lines() -> list[str]:
        return rig.server.log()[seen:].splitlines()

    # access lines are written as requests end, so an earlier test's may land after ``seen``: look for this one's
    assert rig.a.wait_until(lambda: any(line.endswith("attempts=3") for line in new_lines()), timeout=10)
    failed = [line for line in new_lines() if "model retrying: attempt" in line]
    assert len(failed) == 2 and all("on deployment a (provider a) failed" in line and " 503 " in line
                                    for line in failed), failed
    assert "attempt 1 " in failed[0] and "attempt 2 " in failed[1]
    posts = [line for line in new_lines() if "relaystack.access: POST /v1/chat/completions" in line]
    (access,) = [line for line in posts if line.endswith("attempts=3")]  # the request's own line
    assert " 200 " in access and "model=retrying provider=b" in access and access.endswith("attempts=3")
    # and one access line per attempt, in order: two 503s on a (each retried), then b's answer
    tries = [line for line in posts if "model=retrying" in line and "/3 outcome=" in line]
    assert len(tries) == 3, posts
    assert " 503 " in tries[0] and "deployment=a attempt=1/3 outcome=error" in tries[0] and "then=retry" in tries[0]
    assert " 503 " in tries[1] and "deployment=a attempt=2/3" in tries[1]
    assert " 200 " in tries[2] and "deployment=b attempt=3/3 outcome=ok" in tries[2]


def test_a_400_is_passed_through_after_one_attempt(rig: Rig) -> None:
    rig.a.fail_next(400, message="bad request")
    response = rig.post("retrying")
    assert response.status_code == 400 and response.headers["x-relaystack-attempts"] == "1"
    assert len(rig.a.requests_to(CHAT)) == 1 and rig.b.requests == []


def test_retry_after_under_the_cap_is_honoured(rig: Rig) -> None:
    rig.a.fail_next(429, retry_after=0.2)
    response = rig.post("retrying")
    assert response.headers["x-relaystack-provider"] == "a" and response.headers["x-relaystack-attempts"] == "2"


def test_retry_after_over_the_cap_goes_to_the_next_deployment(rig: Rig) -> None:
    rig.a.fail_next(429, retry_after=30, times=2)
    response = rig.post("held")
    assert response.status_code == 200 and response.headers["x-relaystack-provider"] == "b"
    assert len(rig.a.requests_to(CHAT)) == 1  # no retry: the upstream asked for 30 s, the cap is 1 s
    # and it is left aside for those 30 s, whatever the cooldown's failure count
    assert rig.health("held")["a"]["state"] == "cooling_down"
    assert rig.post("held").headers["x-relaystack-attempts"] == "1"
    assert len(rig.a.requests_to(CHAT)) == 1


def test_every_deployment_failing_stops_the_openai_sdk_retrying_on_top(rig: Rig) -> None:
    rig.a.fail_next(503, times=100)
    rig.b.fail_next(503, times=100)
    client = openai.OpenAI(base_url=rig.server.base_url + "/v1", api_key="unused")  # default max_retries=2
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="retrying", messages=HELLO)  # type: ignore[arg-type]
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert raised.value.response.headers["x-relaystack-attempts"] == "4"
    # 2 attempts on each deployment, once: not x3 for the SDK's own retries
    assert len(rig.a.requests_to(CHAT)) == 2 and len(rig.b.requests_to(CHAT)) == 2


def test_the_client_can_ask_for_a_single_attempt(rig: Rig) -> None:
    rig.a.fail_next(503, times=10)
    response = rig.post("retrying", headers={"X-Relaystack-Max-Attempts": "1"})
    assert response.status_code == 503 and response.headers["x-relaystack-attempts"] == "1"
    assert rig.b.requests == []
    bad = rig.post("retrying", headers={"X-Relaystack-Max-Attempts": "none"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "X-Relaystack-Max-Attempts"


@pytest.mark.parametrize("stream", [False, True])
def test_the_front_ends_are_routed_and_say_who_answered(rig: Rig, stream: bool) -> None:
    """/v1/responses and /v1/messages go through the same router: fallback, headers, max attempts."""
    base = rig.server.base_url
    responses = httpx.post(f"{base}/v1/responses", json={"model": "down", "input": "Hello", "stream": stream},
                           timeout=30)
    messages = httpx.post(f"{base}/v1/messages", timeout=30, json={
        "model": "down", "max_tokens": 16, "stream": stream, "messages": [{"role": "user", "content": "Hello"}]})
    for answer in (responses, messages):
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-relaystack-provider"] == "b" and answer.headers["x-relaystack-deployment"] == "b"
        assert answer.headers["x-relaystack-attempts"] in {"1", "2"}  # "2" if this opened the cooldown
    rig.a.fail_next(503, times=10)
    single = httpx.post(f"{base}/v1/responses", json={"model": "retrying", "input": "Hello", "stream": stream},
                        headers={"X-Relaystack-Max-Attempts": "1"}, timeout=30)
    assert single.status_code == 503 and single.headers["x-relaystack-attempts"] == "1"
    assert len(rig.a.requests_to(CHAT)) == 1
    bad = httpx.post(f"{base}/v1/messages", headers={"X-Relaystack-Max-Attempts": "0"}, timeout=30, json={
        "model": "down", "max_tokens": 16, "messages": [{"role": "user", "content": "Hello"}]})
    assert bad.status_code == 400 and "X-Relaystack-Max-Attempts" in bad.text


def test_a_stream_stalled_before_its_first_byte_is_served_elsewhere(rig: Rig) -> None:
    rig.a.stall_next(10, path=CHAT)
    rig.a.stall_next(10, path=CHAT)
    response = rig.post("retrying", stream=True)
    assert response.status_code == 200 and events(response)[-1] == "[DONE]"
    # a timed out twice (first_byte_s), then b
    assert response.headers["x-relaystack-provider"] == "b" and response.headers["x-relaystack-attempts"] == "3"
    assert rig.a.wait_for_disconnect(timeout=10)  # the stalled attempt was abandoned, not left hanging


def test_a_stream_stalled_mid_way_ends_with_an_error_event_and_is_not_retried(rig: Rig) -> None:
    rig.a.cut_stream_after(2, hang=True)
    response = rig.post("retrying", stream=True)
    assert response.status_code == 200  # committed at the first event
    data = events(response)
    assert "[DONE]" not in data
    error = orjson.loads(data[-1])["error"]
    assert error["code"] == "upstream_timeout" and "idle_s" in error["message"]
    assert len(data) == 3  # two events, then the error
    assert rig.b.requests == [] and len(rig.a.requests_to(CHAT)) == 1


def test_a_stream_cut_mid_way_ends_with_an_error_event_and_is_not_retried(rig: Rig) -> None:
    rig.a.cut_stream_after(2)
    response = rig.post("retrying", stream=True)
    data = events(response)
    assert "[DONE]" not in data and "error" in orjson.loads(data[-1])
    assert rig.b.requests == [] and len(rig.a.requests_to(CHAT)) == 1


def test_a_stream_refused_before_its_first_byte_falls_back(rig: Rig) -> None:
    rig.a.fail_next(500, times=2)
    response = rig.post("retrying", stream=True)
    assert response.status_code == 200 and events(response)[-1] == "[DONE]"
    assert response.headers["x-relaystack-provider"] == "b" and response.headers["x-relaystack-attempts"] == "3"


def test_the_deadline_bounds_retries_and_fallbacks(rig: Rig) -> None:
    rig.a.stall_next(20, path=CHAT)
    response = rig.post("bounded")
    assert response.status_code == 504
    assert "deadline" in response.json()["error"]["message"]
    assert len(rig.a.requests_to(CHAT)) == 1 and rig.b.requests == []


def test_half_open_probe_restores_the_primary(rig: Rig) -> None:
    rig.a.fail_next(503)
    first = rig.post("probed")
    assert first.headers["x-relaystack-provider"] == "b"
    assert rig.health("probed")["a"]["state"] in ("cooling_down", "half_open")
    # the cooldown is 1 s: once it is over, the next request probes a, which is healthy again
    assert rig.a.wait_until(lambda: rig.health("probed")["a"]["state"] == "half_open", timeout=30)
    probe = rig.post("probed")
    assert probe.headers["x-relaystack-provider"] == "a"
    assert rig.health("probed")["a"]["state"] == "healthy"
    assert rig.post("probed").headers["x-relaystack-provider"] == "a"


async def test_weighted_split_over_1000_requests(rig: Rig) -> None:
    async with httpx.AsyncClient(base_url=rig.server.base_url, timeout=30) as client:
        async def worker() -> None:
            for _ in range(1000 // 20):
                response = await client.post(CHAT, json={"model": "weighted", "messages": HELLO})
                assert response.status_code == 200

        await asyncio.gather(*(worker() for _ in range(20)))
    on_a, on_b = len(rig.a.requests_to(CHAT)), len(rig.b.requests_to(CHAT))
    assert on_a + on_b == 1000
    assert 682 <= on_a <= 818  # weights 3:1; binomial sd 13.7, 5 sd either side


def test_least_outstanding_prefers_the_idle_deployment(rig: Rig) -> None:
    rig.a.cut_stream_after(2, hang=True)  # a's next stream stays open until its client leaves
    body = {"model": "least", "messages": HELLO, "stream": True}
    with httpx.stream("POST", rig.server.base_url + CHAT, json=body, timeout=30) as held:
        assert held.headers["x-relaystack-provider"] == "a"  # both idle: the first listed
        lines = held.iter_lines()  # kept: dropping the iterator would close the response
        next(lines)
        # a has a request in flight, b none: b serves, each time
        for _ in range(5):
            assert rig.post("least").headers["x-relaystack-provider"] == "b"
    assert rig.a.wait_for_disconnect(timeout=10)
    assert rig.a.wait_until(lambda: rig.health("least")["a"]["outstanding"] == 0, timeout=10)
    assert rig.post("least").headers["x-relaystack-provider"] == "a"


def test_plain_models_and_health_are_unchanged_shape(rig: Rig) -> None:
    health = httpx.get(rig.server.base_url + "/v1/health").json()
    assert set(health["deployments"]) == {"down", "retrying", "probed", "bounded", "held", "weighted", "least"}
    assert set(health["deployments"]["retrying"]["a"]) >= {"provider_id", "state", "until", "outstanding"}
    models = {m["id"] for m in httpx.get(rig.server.base_url + "/v1/models").json()["data"]}
    assert {"down", "retrying"} <= models
