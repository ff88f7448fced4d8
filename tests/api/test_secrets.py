"""Canary keys on every path: no configured, environment or per-request key in any byte relaystack writes.

An upstream that echoes the key it was given (in any error field, in an error event anywhere in a
large block, in a normal answer) must not get it to the client, the log, the SQLite files or a
recording. The key comes from the environment (``${env.TOGETHER_API_KEY}`` in run.yaml) or from
X-LlamaStack-Provider-Data; each test first shows the request carrying the key succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fakes.fake_together import FakeTogether
from support.server import RunningServer, start_server, write_config
from support.stack import CHAT_MODEL, issue_config

ENV_CANARY = "sk-envcanary-5b4a39281706f5e4d3c2b1a0"
HEADER_CANARY = "hdr-canary-0a1b2c3d4e5f60718293a4b5c6d7"
HELLO = [{"role": "user", "content": "Hello, world!"}]
SOURCES = ["environment", "provider-data"]


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeTogether, RunningServer]]:
    home = tmp_path_factory.mktemp("secrets")
    fake = FakeTogether((ENV_CANARY, HEADER_CANARY)).start()
    config = write_config(home / "run.yaml", issue_config(base_url=fake.base_url))
    server = start_server(config, home=home, args=["--log-level", "debug"], env={"TOGETHER_API_KEY": ENV_CANARY})
    try:
        yield fake, server
    finally:
        server.stop()
        fake.stop()


def key_and_headers(source: str) -> tuple[str, dict[str, str]]:
    if source == "environment":
        return ENV_CANARY, {}
    return HEADER_CANARY, {"X-LlamaStack-Provider-Data": json.dumps({"together_api_key": HEADER_CANARY})}


def chat(server: RunningServer, headers: dict[str, str], *, stream: bool = False) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/chat/completions", headers=headers,
                      json={"model": CHAT_MODEL, "messages": HELLO, "stream": stream})


def assert_key_works(fake: FakeTogether, server: RunningServer, key: str, headers: dict[str, str]) -> None:
    fake.reset()
    ok = chat(server, headers)
    assert ok.status_code == 200, ok.text
    assert fake.last_request.api_key == key


def chunk(content: str, *, finish: str | None = None, cid: str = "chat-secret") -> bytes:
    event = {"id": cid, "object": "chat.completion.chunk", "created": 1, "model": "up",
             "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(event) + b"\n\n"


def error_event(key: str) -> bytes:
    error = {"message": f"Invalid API key {key}", "type": f"auth_{key}", "param": f"Bearer {key}", "code": key}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


@pytest.mark.parametrize("source", SOURCES)
def test_every_field_of_a_json_error_is_scrubbed(leaky: tuple[FakeTogether, RunningServer], source: str) -> None:
    fake, server = leaky
    key, headers = key_and_headers(source)
    assert_key_works(fake, server, key, headers)
    error = {"message": f"Invalid API key {key}", "type": f"auth_{key}", "param": f"Bearer {key}", "code": key}
    fake.fail_next(401, body={"error": error})
    response = chat(server, headers)
    assert response.status_code == 401
    assert key not in response.text
    fields = response.json()["error"]
    assert "[REDACTED]" in fields["message"] and fields["param"] == "Bearer [REDACTED]"
    assert fields["code"] == "[REDACTED]" and fields["type"] == "auth_[REDACTED]"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("position", [2, 150, 298])
def test_an_error_event_anywhere_in_a_large_block_is_scrubbed_and_fails_the_stream(
    leaky: tuple[FakeTogether, RunningServer], source: str, position: int
) -> None:
    fake, server = leaky
    key, headers = key_and_headers(source)
    assert_key_works(fake, server, key, headers)
    events = [chunk(f"t{i} ") for i in range(300)]
    events.insert(position, error_event(key))
    # one write: the error event sits far more than 8 KB before the end of its block
    fake.stream_raw_next(b"".join(events) + chunk("", finish="stop") + b"data: [DONE]\n\n")
    response = chat(server, headers, stream=True)
    assert key.encode() not in response.content
    assert b"[DONE]" not in response.content
    if response.headers["content-type"].startswith("application/json"):
        error = response.json()["error"]
    else:
        error = orjson.loads(response.text.strip().rsplit("\n", 1)[-1].removeprefix("data: "))["error"]
    assert "Invalid API key [REDACTED]" in error["message"] and error["code"] == "[REDACTED]"


@pytest.mark.parametrize("source", SOURCES)
def test_a_key_echoed_in_a_streamed_answer_is_scrubbed_before_the_client_and_the_store(
    leaky: tuple[FakeTogether, RunningServer], source: str
) -> None:
    fake, server = leaky
    key, headers = key_and_headers(source)
    assert_key_works(fake, server, key, headers)
    cid = f"chat-echo-{source}"
    events = [chunk(f"t{i} ", cid=cid) for i in range(200)]
    events.insert(100, chunk(f"your key is {key}!", cid=cid))
    fake.stream_raw_next(b"".join(events) + chunk("", finish="stop", cid=cid) + b"data: [DONE]\n\n")
    response = chat(server, headers, stream=True)
    assert key.encode() not in response.content and b"your key is [REDACTED]!" in response.content
    assert response.text.rstrip().endswith("data: [DONE]")
    stored = httpx.get(f"{server.base_url}/v1/chat/completions/{cid}").json()
    assert "your key is [REDACTED]!" in stored["choices"][0]["message"]["content"]


@pytest.mark.parametrize("source", SOURCES)
def test_a_key_echoed_in_a_json_answer_is_scrubbed_before_the_client_and_the_store(
    leaky: tuple[FakeTogether, RunningServer], source: str
) -> None:
    fake, server = leaky
    key, headers = key_and_headers(source)
    assert_key_works(fake, server, key, headers)
    cid = f"chat-json-echo-{source}"
    answer: dict[str, Any] = {
        "id": cid, "object": "chat.completion", "created": 1, "model": "up",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"key={key}"}, "finish_reason": "stop"}],
    }
    fake.fail_next(200, body=answer)
    response = chat(server, headers)
    assert response.status_code == 200 and key not in response.text
    assert response.json()["choices"][0]["message"]["content"] == "key=[REDACTED]"
    assert key not in httpx.get(f"{server.base_url}/v1/chat/completions/{cid}").text


def test_no_key_in_the_log_or_the_sqlite_files(leaky: tuple[FakeTogether, RunningServer]) -> None:
    """Runs after the tests above (same module): everything they made the server write."""
    _, server = leaky
    files = [p for p in server.log_path.parent.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db-wal") for p in files), files  # the WAL is read too
    assert any(p.suffix == ".log" for p in files)
    for path in files:
        data = path.read_bytes()
        for key in (ENV_CANARY, HEADER_CANARY):
            assert key.encode() not in data, path


def test_a_recording_never_holds_the_key_the_upstream_echoed(tmp_path: Path) -> None:
    fake = FakeTogether((ENV_CANARY,)).start()
    try:
        config = write_config(tmp_path / "run.yaml", issue_config(base_url=fake.base_url))
        recordings = tmp_path / "recordings"
        server = start_server(config, home=tmp_path, env={"TOGETHER_API_KEY": ENV_CANARY},
                              args=["--record-mode", "record", "--recordings", str(recordings)])
        try:
            events = [chunk(f"t{i} ") for i in range(20)] + [chunk(f"key {ENV_CANARY}"), chunk("", finish="stop")]
            fake.stream_raw_next(b"".join(events) + b"data: [DONE]\n\n")
            response = chat(server, {}, stream=True)
            assert response.status_code == 200 and ENV_CANARY not in response.text
            assert response.text.rstrip().endswith("data: [DONE]")
        finally:
            server.stop()
        written = list(recordings.rglob("*.json"))
        assert written, "the stream was recorded"
        for path in [*written, server.log_path]:
            assert ENV_CANARY not in path.read_text(), path
    finally:
        fake.stop()
