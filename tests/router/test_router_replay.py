"""A recorded outage replays deterministically: the primary answers 429, the router falls back.

Replay mode, offline: both deployments replay the seed's Together recordings. The failure comes
either from ``X-Relaystack-Fault`` aimed at one deployment, or from a recording of the error
itself in llama-stack's ``"is_exception": true`` form.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.server import RunningServer, start_server, write_config

RECORDINGS = Path(__file__).parents[1] / "recordings" / "together" / "responses"
FREE = "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
PAID = "meta-llama/Llama-3.3-70B-Instruct-Turbo"  # the primary's id: only its error is recorded
HELLO = [{"role": "user", "content": "Hello, world!"}]
SEEDS = ("0c1f45455d3b", "6730dcde0b73")  # "Hello, world!" as JSON, and streamed


def together(provider_id: str) -> dict[str, Any]:
    return {"provider_id": provider_id, "provider_type": "remote::together",
            "config": {"base_url": "http://127.0.0.1:9/v1", "refresh_models": False}}


def recorded_429(model: str) -> dict[str, Any]:
    """A provider error as llama-stack's recorder (v0.3 on) writes it."""
    message = "Error code: 429 - {'error': {'message': 'Rate limit exceeded', 'type': 'rate_limit_error'}}"
    return {
        "request": {"method": "POST", "url": "https://api.together.xyz/v1/chat/completions", "headers": {},
                    "body": {"model": model, "messages": HELLO, "stream": False},
                    "endpoint": "/v1/chat/completions", "model": model},
        "response": {
            "body": None, "is_streaming": False, "is_exception": True,
            "exception_data": {"category": "provider_sdk", "provider": "openai", "type": "RateLimitError",
                               "message": message, "status_code": 429,
                               "body": {"message": "Rate limit exceeded", "type": "rate_limit_error",
                                        "param": None, "code": "rate_limit_exceeded"}},
            "exception_message": message,
        },
    }


@pytest.fixture(scope="module")
def replaying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("router-replay")
    responses = home / "recordings" / "responses"
    responses.mkdir(parents=True)
    for seed in SEEDS:
        shutil.copy(RECORDINGS / f"{seed}.json", responses)
    (responses / "ffffffffffff.json").write_text(json.dumps(recorded_429(PAID), indent=2) + "\n")
    routing = {"retries": 1, "backoff": {"initial_s": 0.01, "max_s": 0.02}, "retry_after_max_s": 2,
               "cooldown": {"failures": 1000}}
    config = {
        "version": 2,
        "providers": {"inference": [together("primary"), together("secondary")]},
        "models": [
            {"model_id": "llama", "routing": routing, "deployments": [
                {"provider_id": "primary", "provider_model_id": FREE},
                {"provider_id": "secondary", "provider_model_id": FREE, "priority": 1}]},
            {"model_id": "llama-recorded-outage", "routing": routing, "deployments": [
                {"provider_id": "primary", "provider_model_id": PAID},
                {"provider_id": "secondary", "provider_model_id": FREE, "priority": 1}]},
        ],
        "storage": {"inference_store": False},
    }
    server = start_server(write_config(home / "run.yaml", config), home=home,
                          args=["--record-mode", "replay", "--recordings", str(home / "recordings")])
    try:
        yield server
    finally:
        server.stop()


def post(server: RunningServer, model: str, *, stream: bool, fault: str | None = None) -> httpx.Response:
    headers = {"X-Relaystack-Fault": fault} if fault else {}
    body = {"model": model, "messages": HELLO, "stream": stream}
    return httpx.post(server.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_replayed_429_on_the_primary_then_fallback(replaying: RunningServer) -> None:
    response = post(replaying, "llama", stream=False, fault="deployment=primary;status=429;retry-after=0.1")
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "llama" and response.json()["choices"][0]["message"]["content"]
    # 429, its Retry-After honoured, 429 again, then the secondary's recording
    assert response.headers["x-relaystack-deployment"] == "secondary"
    assert response.headers["x-relaystack-attempts"] == "3"


def test_replayed_503_on_the_primary_then_a_streamed_fallback(replaying: RunningServer) -> None:
    response = post(replaying, "llama", stream=True, fault="deployment=primary;status=503")
    assert response.status_code == 200 and response.headers["x-relaystack-deployment"] == "secondary"
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]" and len(data) > 5


def test_a_fault_aimed_at_the_secondary_leaves_the_primary_alone(replaying: RunningServer) -> None:
    response = post(replaying, "llama", stream=False, fault="deployment=secondary;status=500")
    assert response.status_code == 200 and response.headers["x-relaystack-deployment"] == "primary"
    assert response.headers["x-relaystack-attempts"] == "1"


def test_a_fault_naming_no_deployment_of_the_model_is_400(replaying: RunningServer) -> None:
    response = post(replaying, "llama", stream=False, fault="deployment=tertiary;status=500")
    assert response.status_code == 400 and "primary, secondary" in response.json()["error"]["message"]


def test_a_recorded_429_in_llama_stack_form_replays_then_falls_back(replaying: RunningServer) -> None:
    response = post(replaying, "llama-recorded-outage", stream=False)
    assert response.status_code == 200, response.text
    assert response.headers["x-relaystack-deployment"] == "secondary"
    assert response.headers["x-relaystack-attempts"] == "3"  # the recorded 429 twice, then the fallback
    assert re.search(r"model llama-recorded-outage: attempt 1 on deployment primary .* failed after \d+ ms: 429 ",
                     replaying.log())
