"""Streams relayed as they arrive; upstream timeouts end in 504 or an error event; the API documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.server import RunningServer, start_server, write_config
from support.stack import CHAT_MODEL, Stack, issue_config

HELLO = [{"role": "user", "content": "one two three four five six"}]


def test_first_chunk_arrives_while_the_upstream_is_still_streaming(stack: Stack) -> None:
    stack.fake.slow_stream(0.3)
    first_event = None
    try:
        with httpx.stream("POST", f"{stack.base_url}/v1/chat/completions",
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    first_event = line
                    # not buffered whole: the upstream has not finished when the first event is here
                    assert stack.fake.open_streams == 1 and stack.fake.streams_completed == 0
                    break
    finally:
        stack.fake.slow_stream(0)
    assert first_event is not None and orjson.loads(first_event[6:])["object"] == "chat.completion.chunk"


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeTogether, RunningServer]]:
    home = tmp_path_factory.mktemp("impatient")
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    config = write_config(home / "run.yaml", issue_config(api_key=DEFAULT_API_KEY, base_url=fake.base_url,
                                                          read_timeout_s=1.0))
    server = start_server(config, home=home)
    try:
        yield fake, server
    finally:
        server.stop()
        fake.stop()


def test_an_upstream_that_never_answers_is_504(impatient: tuple[FakeTogether, RunningServer]) -> None:
    fake, server = impatient
    fake.stall_next(3.0, path="/v1/chat/completions")
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO},
                          timeout=10)
    assert response.status_code == 504
    assert "read_timeout" in response.json()["error"]["message"] or "timeouts.read" in response.json()["error"][
        "message"]


def test_a_stream_that_stalls_mid_way_ends_with_an_error_event(impatient: tuple[FakeTogether, RunningServer]) -> None:
    fake, server = impatient
    fake.cut_stream_after(2, hang=True)
    response = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=10,
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    last = orjson.loads(events[-1])
    assert last["error"]["code"] == "upstream_timeout"
    stored = httpx.get(f"{server.base_url}/v1/chat/completions").json()["data"]
    assert all(row["choices"][0]["finish_reason"] is not None for row in stored)


def test_openapi_lists_every_route(stack: Stack) -> None:
    document = httpx.get(f"{stack.base_url}/openapi.json").json()
    paths = document["paths"]
    for prefix in ("/v1", "/v1/openai/v1"):
        assert set(paths[f"{prefix}/chat/completions"]) == {"post", "get"}
        for route in ("completions", "embeddings", "models", "models/{model_id}", "providers", "health", "version",
                      "chat/completions/{completion_id}", "providers/{provider_id}"):
            assert f"{prefix}/{route}" in paths
    assert document["openapi"].startswith("3.")


def test_version_and_health(stack: Stack, tmp_path: Path) -> None:
    assert httpx.get(f"{stack.base_url}/v1/version").json()["version"]
    health = httpx.get(f"{stack.base_url}/v1/health").json()
    assert health["status"] == "OK" and health["ready"] is True
    assert health["recording"]["mode"] == "live"
