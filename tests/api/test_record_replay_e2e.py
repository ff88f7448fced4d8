"""Record against a fake Together through `relaystack run`, then replay offline; no key ever written."""

from __future__ import annotations

import base64
import importlib
import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from fakes.fake_together import FakeTogether
from support.server import RunningServer, start_server, write_config
from support.stack import CHAT_MODEL, EMBED_MODEL, issue_config

CANARY = "sk-canary-7d1e0c9b8a7f6e5d4c3b2a1908f7e6d5"
HEADER_CANARY = "hdr-canary-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
HELLO = [{"role": "user", "content": "Record me, please."}]


def exercise(base_url: str, *, header_key: str | None = None) -> dict[str, object]:
    headers = {"X-LlamaStack-Provider-Data": json.dumps({"together_api_key": header_key})} if header_key else {}
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, default_headers=headers)
    chat = client.chat.completions.create(model=CHAT_MODEL, messages=HELLO)
    stream = list(client.chat.completions.create(model=CHAT_MODEL, messages=HELLO, stream=True))
    embedding = client.embeddings.create(model=EMBED_MODEL, input=["one", "two"])
    completion = client.completions.create(model=CHAT_MODEL, prompt="Roses are red,", max_tokens=8)
    return {
        "chat": (chat.id, chat.choices[0].message.content),
        "stream": [(c.id, c.choices[0].delta.content, c.choices[0].finish_reason) for c in stream if c.choices],
        "embedding": [d.embedding[:4] for d in embedding.data],
        "completion": completion.choices[0].text,
    }


def start(config: Path, home: Path, mode: str, recordings: Path) -> RunningServer:
    return start_server(config, home=home, args=["--record-mode", mode, "--recordings", str(recordings)])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, object]]]:
    home = tmp_path_factory.mktemp("record")
    recordings = home / "recordings"
    fake = FakeTogether((CANARY, HEADER_CANARY)).start()
    config = write_config(home / "run.yaml", issue_config(api_key=CANARY, base_url=fake.base_url))
    try:
        server = start(config, home, "record", recordings)
        try:
            exercise(server.base_url)
            # the same requests again, keyed per request: same files, overwritten with these answers
            answers = exercise(server.base_url, header_key=HEADER_CANARY)
        finally:
            server.stop()
    finally:
        fake.stop()
    yield config, recordings, answers


def test_record_writes_llama_stack_files_that_its_reader_loads(recorded: tuple[Path, Path, dict[str, object]]) -> None:
    _, recordings, _ = recorded
    files = sorted((recordings / "responses").glob("*.json"))
    assert len(files) >= 5  # chat, stream, embeddings, completion, and the model listing
    endpoints = set()
    for path in files:
        data = json.loads(path.read_text())
        assert set(data) == {"request", "response"} and data["request"]["headers"] == {}
        endpoints.add(data["request"]["endpoint"])
        body = data["response"]["body"]
        for item in body if isinstance(body, list) else [body]:
            if isinstance(item, dict) and "__type__" in item:
                # llama-stack's reader: import the class, model_validate, else model_construct
                # (Together's "text.completion" object name fails OpenAI's Literal, in its files too)
                module, _, name = item["__type__"].rpartition(".")
                cls = getattr(importlib.import_module(module), name)
                try:
                    cls.model_validate(item["__data__"])
                except ValueError:
                    assert isinstance(cls.model_construct(**item["__data__"]), cls)
    assert {"/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/models"} <= endpoints


def test_no_key_is_written_anywhere(recorded: tuple[Path, Path, dict[str, object]]) -> None:
    config, _, _ = recorded
    forms = []
    for key in (CANARY, HEADER_CANARY):
        forms += [key, base64.b64encode(key.encode()).decode(), urllib.parse.quote(key), json.dumps(key)[1:-1]]
    for path in config.parent.rglob("*"):
        if path.is_file() and path != config:
            text = path.read_bytes().decode("utf-8", errors="replace")
            for form in forms:
                assert form not in text, f"{form} found in {path}"


def test_replay_serves_the_recording_with_no_upstream_at_all(
    recorded: tuple[Path, Path, dict[str, object]], tmp_path: Path,
) -> None:
    config, recordings, answers = recorded
    server = start(config, tmp_path, "replay", recordings)  # the fake Together is gone
    try:
        assert exercise(server.base_url) == answers
    finally:
        server.stop()


def test_recording_twice_gives_the_same_file_names(
    recorded: tuple[Path, Path, dict[str, object]], tmp_path: Path,
) -> None:
    _, recordings, _ = recorded
    fake = FakeTogether((CANARY,)).start()
    try:
        config = write_config(tmp_path / "run.yaml", issue_config(api_key=CANARY, base_url=fake.base_url))
        again = tmp_path / "again"
        server = start(config, tmp_path, "record", again)
        try:
            exercise(server.base_url)
        finally:
            server.stop()
    finally:
        fake.stop()
    first = {p.name for p in (recordings / "responses").glob("*.json")}
    second = {p.name for p in (again / "responses").glob("*.json")}
    assert second and second <= first


def test_faults_on_replay(recorded: tuple[Path, Path, dict[str, object]], tmp_path: Path) -> None:
    config, recordings, _ = recorded
    server = start(config, tmp_path, "replay", recordings)
    try:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)
        cut = client.with_options(default_headers={"X-Relaystack-Fault": "cut-after=2"})
        with pytest.raises(openai.APIError):
            list(cut.chat.completions.create(model=CHAT_MODEL, messages=HELLO, stream=True))
        limited = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO},
                             headers={"X-Relaystack-Fault": "status=429;retry-after=2"})
        assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
        bad = httpx.post(f"{server.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO},
                         headers={"X-Relaystack-Fault": "explode=yes"})
        assert bad.status_code == 400 and "cut-after" in bad.json()["error"]["message"]
        # a fault that cannot happen to this request is refused, not silently skipped
        for fault in ("cut-after=2", "malformed-after=1", "status=429;cut-after=1"):
            inapplicable = httpx.post(f"{server.base_url}/v1/chat/completions", headers={"X-Relaystack-Fault": fault},
                                      json={"model": CHAT_MODEL, "messages": HELLO})
            assert inapplicable.status_code == 400, (fault, inapplicable.text)
            assert inapplicable.json()["error"]["param"] == "X-Relaystack-Fault"
        # position 0 of a JSON answer exists: the connection drops before it
        dropped = httpx.post(f"{server.base_url}/v1/chat/completions", headers={"X-Relaystack-Fault": "cut-after=0"},
                             json={"model": CHAT_MODEL, "messages": HELLO})
        assert dropped.status_code == 502
    finally:
        server.stop()


def test_a_replay_miss_is_not_retried_by_the_openai_sdk(
    recorded: tuple[Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    config, recordings, _ = recorded
    server = start(config, tmp_path, "replay", recordings)
    try:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=2)
        with pytest.raises(openai.NotFoundError) as info:
            client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "never recorded"}])
        assert "No recording matches" in str(info.value) and "record-mode record" in str(info.value)
        time.sleep(0.5)
        misses = [line for line in server.log().splitlines() if "replay miss" in line]
        assert len(misses) == 1, server.log()  # one request: the SDK did not retry it
    finally:
        server.stop()
