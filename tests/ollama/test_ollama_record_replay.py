"""Ollama recorded with test ids (llama-stack's later generation), then replayed with Ollama gone.

One `relaystack run --record-mode record --recording-format per-test` against the fake Ollama
writes what a llama-stack test run would: per-test folders, 64-hex names, /api/tags shared, an
upstream 429 as an ``is_exception`` recording, the image download byte for byte. A second server
replays the folder with the fake stopped: same answers, same error, no network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fakes.fake_ollama import FakeOllama
from support.server import start_server, write_config

from .conftest import ollama_config

MODEL = "ollama/llama3.2:3b-instruct-fp16"
VISION = "ollama/llama3.2-vision:11b"
CHAT_TEST = "tests/integration/inference/test_ollama.py::test_chat[txt=ollama]"
ERROR_TEST = "tests/integration/inference/test_ollama.py::test_busy"
IMAGE_TEST = "tests/integration/vision/test_images.py::test_link"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
# a key for an authenticating proxy in front of Ollama: it must never reach a recording
CANARY = "canary-ollama-proxy-key-7f3a9c"


def _client(base_url: str, test_id: str) -> openai.OpenAI:
    header = {"X-LlamaStack-Provider-Data": json.dumps({"__test_id": test_id})}
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=60,
                         default_headers=header)


def _session(base_url: str, image_url: str, before_busy: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """The same calls in record and in replay; what each answered (an error as its status and body).
    ``before_busy`` runs right before the busy test's call (record mode: make Ollama answer 429)."""
    out: dict[str, Any] = {}
    chat = _client(base_url, CHAT_TEST)
    out["chat"] = chat.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}]).model_dump()
    stream = chat.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one two"}], stream=True)
    out["stream"] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    headers = {"X-LlamaStack-Provider-Data": json.dumps({"__test_id": CHAT_TEST})}
    out["providers"] = httpx.get(f"{base_url}/v1/providers", headers=headers).json()["data"][0]["health"]
    before_busy()
    try:
        _client(base_url, ERROR_TEST).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    except openai.RateLimitError as exc:
        out["error"] = (exc.status_code, exc.response.headers.get("retry-after"), exc.body)
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                            {"type": "text", "text": "describe"}]}
    vision = _client(base_url, IMAGE_TEST).chat.completions.create(model=VISION, messages=[message])
    out["vision"] = vision.choices[0].message.content
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any], str, Path]]:
    home = tmp_path_factory.mktemp("ollama-record")
    folder = home / "recordings-dir"
    fake = FakeOllama().start()
    image_url = fake.serve_file("dog.png", "image/png", PNG)
    config = write_config(home / "run.yaml", ollama_config(fake.base_url, api_key=CANARY))
    server = start_server(config, home=home / "rec", args=["--record-mode", "record", "--recordings", str(folder),
                                                           "--recording-format", "per-test"])
    try:
        answers = _session(server.base_url, image_url,
                           lambda: fake.fail_next(429, retry_after=2, path="/v1/chat/completions"))
        # the proxy key goes to Ollama on every call (the image host never sees it)
        sent = {r.path: r.headers.get("authorization") for r in fake.requests}
        assert sent.pop("/files/dog.png") is None
        assert set(sent.values()) == {f"Bearer {CANARY}"}
    finally:
        server.stop()
        fake.stop()
    yield folder, answers, image_url, config


def test_files_are_where_llama_stack_looks(recorded: tuple[Path, dict[str, Any], str, Path]) -> None:
    folder = recorded[0]
    chat_files = sorted((folder / "tests/integration/inference/recordings").glob("*.json"))
    docs = [json.loads(p.read_text()) for p in chat_files]
    assert {d["test_id"] for d in docs} == {CHAT_TEST, ERROR_TEST}
    assert all(len(p.stem) == 64 for p in chat_files)
    endpoints = sorted(d["request"]["endpoint"] for d in docs if d["test_id"] == CHAT_TEST)
    assert endpoints == ["/api/ps", "/v1/chat/completions", "/v1/chat/completions"]
    [error] = [d for d in docs if d["test_id"] == ERROR_TEST]
    assert error["response"]["is_exception"] is True
    assert error["response"]["exception_data"]["status_code"] == 429
    assert error["response"]["exception_data"]["type"] == "RateLimitError"
    # start-up calls have no test: the shared fallback folder; a listing is models-<hash>-<digest>
    shared = sorted(p.name for p in (folder / "recordings").glob("*.json"))
    assert any(n.startswith("models-") for n in shared)
    # the image download sits with its test, byte for byte
    [download] = [json.loads(p.read_text()) for p in (folder / "tests/integration/vision/recordings").glob("*.json")
                  if json.loads(p.read_text())["request"]["method"] == "GET"]
    assert download["response"]["is_binary"] is True
    # the proxy key is in no file
    assert all(CANARY not in p.read_text() for p in folder.rglob("*.json"))


def test_replay_answers_the_same_with_ollama_gone(
    recorded: tuple[Path, dict[str, Any], str, Path], tmp_path: Path
) -> None:
    folder, answers, image_url, config = recorded
    server = start_server(config, home=tmp_path, args=["--record-mode", "replay", "--recordings", str(folder)])
    try:
        replayed = _session(server.base_url, image_url)
    finally:
        server.stop()
    assert replayed == answers
    status, retry_after, body = answers["error"]
    assert (status, retry_after) == (429, "2") and "server busy" in json.dumps(body)
    assert answers["providers"] == {"status": "OK"}
    assert answers["vision"].endswith(f"(and {len(PNG)} image bytes)")
