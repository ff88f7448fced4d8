"""Per-request keys, missing keys, unreachable upstreams, and secrets kept out of everything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes.fake_together import FakeTogether
from support.server import RunningServer, free_port, start_server, write_config
from support.stack import CHAT_MODEL, issue_config

CANARY = "canary-key-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
HELLO = [{"role": "user", "content": "Hello, world!"}]


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeTogether, RunningServer]]:
    """A server whose Together provider has no configured key: keys come per request."""
    home = tmp_path_factory.mktemp("keyless")
    fake = FakeTogether((CANARY,)).start()
    config = write_config(home / "run.yaml", issue_config(api_key=None, base_url=fake.base_url))
    server = start_server(config, home=home, args=["--log-level", "debug"])
    try:
        yield fake, server
    finally:
        server.stop()
        fake.stop()


def test_missing_key_is_400_naming_the_header_and_the_config(keyless: tuple[FakeTogether, RunningServer]) -> None:
    fake, server = keyless
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "together_api_key" in message and "TOGETHER_API_KEY" in message
    assert fake.requests_to("/v1/chat/completions") == []


def test_provider_data_key_is_used_for_that_request_only(keyless: tuple[FakeTogether, RunningServer]) -> None:
    fake, server = keyless
    header = {"X-LlamaStack-Provider-Data": json.dumps({"together_api_key": CANARY})}
    ok = httpx.post(f"{server.base_url}/v1/chat/completions", headers=header,
                    json={"model": CHAT_MODEL, "messages": HELLO})
    assert ok.status_code == 200, ok.text
    assert fake.last_request.api_key == CANARY
    # the next request, without the header, does not inherit it
    again = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO})
    assert again.status_code == 400


def test_unregistered_provider_prefixed_model_routes_with_a_header_key(
    keyless: tuple[FakeTogether, RunningServer],
) -> None:
    fake, server = keyless
    header = {"X-LlamaStack-Provider-Data": json.dumps({"together_api_key": CANARY})}
    response = httpx.post(f"{server.base_url}/v1/chat/completions", headers=header,
                          json={"model": "together/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", "messages": HELLO})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "together/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"
    assert fake.last_request.json["model"] == "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"


def test_the_key_is_never_in_logs_providers_or_the_store(keyless: tuple[FakeTogether, RunningServer]) -> None:
    fake, server = keyless
    header = {"X-LlamaStack-Provider-Data": json.dumps({"together_api_key": CANARY})}
    streamed = httpx.post(f"{server.base_url}/v1/chat/completions", headers=header,
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    # the key really was used (a refused or unsent key would make the checks below prove nothing)
    assert streamed.status_code == 200 and '"finish_reason":"stop"' in streamed.text.replace(" ", "")
    assert fake.last_request.api_key == CANARY
    stored = httpx.get(f"{server.base_url}/v1/chat/completions").json()["data"]
    assert stored, "the streamed completion was stored, so the store is searched for the key too"
    fake.fail_next(401)
    refused = httpx.post(f"{server.base_url}/v1/chat/completions", headers=header,
                         json={"model": CHAT_MODEL, "messages": HELLO})
    assert refused.status_code == 401
    providers = httpx.get(f"{server.base_url}/v1/providers").text
    assert CANARY not in providers
    assert CANARY not in server.log()
    home = server.log_path.parent
    for path in home.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_providers_mask_the_configured_key(tmp_path: Path) -> None:
    fake = FakeTogether((CANARY,)).start()
    try:
        config = write_config(tmp_path / "run.yaml", issue_config(api_key=CANARY, base_url=fake.base_url))
        server = start_server(config, home=tmp_path)
        try:
            info = httpx.get(f"{server.base_url}/v1/providers/together").json()
            assert info["provider_type"] == "remote::together" and info["api"] == "inference"
            assert info["config"]["api_key"] == "********"
            assert CANARY not in httpx.get(f"{server.base_url}/v1/providers").text
        finally:
            server.stop()
    finally:
        fake.stop()


def test_unreachable_upstream_is_502_and_start_up_survives_it(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = write_config(tmp_path / "run.yaml", issue_config(api_key="k", base_url=dead))
    server = start_server(config, home=tmp_path)
    try:
        response = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO})
        assert response.status_code == 502
        error = response.json()["error"]
        assert "base_url" in error["message"]
        # configured models are still served when discovery failed at start-up
        ids = [m["id"] for m in httpx.get(f"{server.base_url}/v1/models").json()["data"]]
        assert CHAT_MODEL in ids
    finally:
        server.stop()


def test_an_upstream_error_echoing_the_key_does_not_pass_it_on(keyless: tuple[FakeTogether, RunningServer]) -> None:
    fake, server = keyless
    header = {"X-LlamaStack-Provider-Data": json.dumps({"together_api_key": CANARY})}
    fake.fail_next(401, message=f"Invalid API key provided: {CANARY}")
    response = httpx.post(f"{server.base_url}/v1/chat/completions", headers=header,
                          json={"model": CHAT_MODEL, "messages": HELLO})
    assert response.status_code == 401
    assert CANARY not in response.text and "Invalid API key provided: ***" in response.text
