"""/v1/health per provider (ok / degraded / unreachable, never calling upstream per probe), the
access log (one line per request, JSON with --log-format json, never a key), and
/v1/inspect/routes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.server import RunningServer, free_port, start_server, write_config
from support.stack import CHAT_MODEL, EMBED_MODEL, issue_config

CANARY = "sk-canary-access-log-0123456789abcdef"
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeTogether, RunningServer]]:
    home = tmp_path_factory.mktemp("health")
    fake = FakeTogether((DEFAULT_API_KEY, CANARY)).start()
    config = issue_config(api_key=DEFAULT_API_KEY, base_url=fake.base_url)
    # a second provider whose upstream cannot be reached: nothing listens on that port
    config["providers"]["inference"].append({
        "provider_id": "down", "provider_type": "remote::openai-compat",
        "config": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "api_key": "sk-down-0123456789",
                   "connect_timeout_s": 2},
    })
    server = start_server(write_config(home / "run.yaml", config), home=home, args=["--log-format", "json"])
    try:
        yield fake, server
    finally:
        server.stop()
        fake.stop()


def health(server: RunningServer) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/v1/health")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def access_lines(server: RunningServer) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "relaystack.access"]


def test_health_has_every_part_in_one_answer(servers: tuple[FakeTogether, RunningServer]) -> None:
    """Providers (with their outcome), the store and shared-state backends, the routed models'
    deployments and the counters of quiet failures: all in the one probe."""
    _fake, server = servers
    data = health(server)
    assert {"status", "ready", "providers", "store", "state", "recording", "deployments", "counters"} <= set(data)
    assert data["providers"]["together"]["outcome"] in ("ok", "degraded", "unreachable", "unknown")
    assert data["store"]["status"] == "OK" and data["state"]["status"] == "OK"
    assert set(data["counters"]) == {"store_failures", "malformed_streams"}
    assert all(isinstance(v, int) for v in data["counters"].values())


def test_health_reports_each_provider_without_calling_upstream(servers: tuple[FakeTogether, RunningServer]) -> None:
    fake, server = servers
    listings_before = len(fake.requests_to("/v1/models"))
    providers = health(server)["providers"]
    for _ in range(5):
        providers = health(server)["providers"]
    assert len(fake.requests_to("/v1/models")) == listings_before  # probes cost the upstream nothing
    together, down = providers["together"], providers["down"]
    assert together["outcome"] == "ok"
    assert together["last_discovery"]["state"] == "ok" and together["last_discovery"]["models"] >= 1
    assert down["outcome"] == "unreachable"
    assert down["last_discovery"]["state"] == "unreachable"
    assert "sk-down" not in json.dumps(providers)


def test_health_follows_the_last_request(servers: tuple[FakeTogether, RunningServer]) -> None:
    fake, server = servers
    fake.reset()
    fake.fail_next(503, path="/v1/chat/completions")
    failed = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO})
    assert failed.status_code == 503
    together = health(server)["providers"]["together"]
    assert together["outcome"] == "degraded"
    assert together["last_request"]["state"] == "degraded" and together["last_request"]["status"] == 503
    ok = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO})
    assert ok.status_code == 200
    assert health(server)["providers"]["together"]["outcome"] == "ok"
    # a request the client got wrong says nothing bad about the provider
    bad = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": "x"})
    assert bad.status_code == 400
    assert health(server)["providers"]["together"]["outcome"] == "ok"


def test_a_request_to_an_unreachable_provider_marks_it(servers: tuple[FakeTogether, RunningServer]) -> None:
    _, server = servers
    response = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=30,
                          json={"model": "down/some-model", "messages": HELLO})
    assert response.status_code == 502
    down = health(server)["providers"]["down"]
    assert down["outcome"] == "unreachable" and down["last_request"]["status"] == 502


def test_one_json_access_line_per_request_with_model_provider_and_tokens(
    servers: tuple[FakeTogether, RunningServer],
) -> None:
    fake, server = servers
    fake.reset()
    before = len(access_lines(server))
    headers = {"X-LlamaStack-Provider-Data": json.dumps({"together_api_key": CANARY})}
    chat = httpx.post(f"{server.base_url}/v1/chat/completions", headers=headers,
                      json={"model": CHAT_MODEL, "messages": HELLO})
    assert chat.status_code == 200, chat.text  # the request carrying the canary key succeeded
    stream = httpx.post(f"{server.base_url}/v1/chat/completions",
                        json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    assert stream.status_code == 200
    embeddings = httpx.post(f"{server.base_url}/v1/embeddings", json={"model": EMBED_MODEL, "input": "hi"})
    assert embeddings.status_code == 200
    bad = httpx.post(f"{server.base_url}/v1/completions?key={CANARY}", json={"model": CHAT_MODEL})
    assert bad.status_code == 400
    assert httpx.get(f"{server.base_url}/v1/models").status_code == 200
    def mine() -> list[dict[str, Any]]:  # (a previous test's last /v1/health line may come late)
        return [line for line in access_lines(server)[before:] if line["path"] != "/v1/health"]

    deadline = time.monotonic() + 10  # a line is written just after the last byte was sent
    while len(mine()) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = mine()
    # one line per request (written once each answer is sent, so not necessarily in order)
    assert sorted((line["method"], line["path"], line["status"], line.get("stream")) for line in lines) == [
        ("GET", "/v1/models", 200, None),
        ("POST", "/v1/chat/completions", 200, False),
        ("POST", "/v1/chat/completions", 200, True),
        ("POST", "/v1/completions", 400, False),
        ("POST", "/v1/embeddings", 200, False),
    ]
    by_key = {(line["path"], line["status"], line.get("stream")): line for line in lines}
    chat_line = by_key[("/v1/chat/completions", 200, False)]
    stream_line = by_key[("/v1/chat/completions", 200, True)]
    embed_line = by_key[("/v1/embeddings", 200, False)]
    bad_line = by_key[("/v1/completions", 400, False)]
    admin_line = by_key[("/v1/models", 200, None)]
    usage = chat.json()["usage"]
    assert chat_line["model"] == CHAT_MODEL and chat_line["provider"] == "together"
    assert stream_line["model"] == CHAT_MODEL and stream_line["provider"] == "together"
    assert chat_line["prompt_tokens"] == usage["prompt_tokens"]
    assert chat_line["completion_tokens"] == usage["completion_tokens"]
    assert embed_line["provider"] == "together" and embed_line["stream"] is False
    assert bad_line["error"] == "invalid_value"
    assert all(isinstance(line["latency_ms"], float | int) for line in lines)
    assert "model" not in admin_line
    assert CANARY not in server.log()  # neither the header's key nor the query string


def test_text_access_lines_by_default(tmp_path: Path, fake_together: FakeTogether) -> None:
    config = write_config(tmp_path / "run.yaml", issue_config(api_key=DEFAULT_API_KEY,
                                                              base_url=fake_together.base_url))
    server = start_server(config, home=tmp_path)
    try:
        assert httpx.post(f"{server.base_url}/v1/chat/completions",
                          json={"model": CHAT_MODEL, "messages": HELLO}).status_code == 200
        deadline = time.monotonic() + 10
        while "relaystack.access: POST" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server.log()
    finally:
        server.stop()
    (line,) = [line for line in log.splitlines() if "relaystack.access: POST" in line]
    assert "POST /v1/chat/completions 200 " in line and f"model={CHAT_MODEL} provider=together json" in line
    assert "tokens=" in line


def test_inspect_routes_lists_every_route_for_llama_stack_client(
    servers: tuple[FakeTogether, RunningServer],
) -> None:
    from llama_stack_client import LlamaStackClient

    _, server = servers
    routes = LlamaStackClient(base_url=server.base_url).routes.list()
    served = {(r.method, r.route) for r in routes}
    for route in [("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/health"),
                  ("GET", "/v1/inspect/routes"), ("GET", "/v1/models/{model_id}"), ("POST", "/v1/responses"),
                  ("GET", "/v1/responses/{response_id}"), ("POST", "/v1/messages")]:
        assert route in served
    chat = next(r for r in routes if (r.method, r.route) == ("POST", "/v1/chat/completions"))
    assert chat.provider_types == ["remote::openai-compat", "remote::together"]
    assert not any(r.route.startswith("/v1/openai/v1/") for r in routes)  # deprecated: only on request
    deprecated = httpx.get(f"{server.base_url}/v1/inspect/routes", params={"api_filter": "deprecated"}).json()
    assert deprecated["data"] and all(r["route"].startswith("/v1/openai/v1/") for r in deprecated["data"])
    bad = httpx.get(f"{server.base_url}/v1/inspect/routes", params={"api_filter": "v9"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "api_filter"
