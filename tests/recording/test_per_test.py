"""llama-stack's later recording generation: test ids, per-test folders, is_exception, downloads."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaystack.errors import ConfigError, ReplayMissError, UpstreamConnectionError, UpstreamTimeoutError
from relaystack.recording import RecordingSettings, RecordingUpstream, RecordMode, wrap_upstream
from relaystack.recording.codec import load_recording
from relaystack.recording.identity import identity_of_request, per_test_hash
from relaystack.recording.layout import RecordingFormat, per_test_dir, recording_files
from relaystack.recording.responses import ReplayResponse
from relaystack.recording.store import RecordingStore
from relaystack.recording.testid import bound_test_id, current_test_id
from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.http_client import HttpUpstream

from .conftest import get, post, sse_payloads
from .fake_upstream import MODEL, UpstreamState
from .test_replay import ExplodingUpstream, replayer

V071 = Path(__file__).resolve().parents[1] / "recordings" / "llamastack-v0.7.1"
V071_FILES = recording_files(V071)
OLLAMA = "http://0.0.0.0:11434/v1"
T = "tests/integration/inference/test_openai_completion.py::"
CHAT_TEST = T + "test_openai_chat_completion_non_streaming[openai_client-txt=ollama/llama3.2:3b-instruct-fp16-" \
                "inference:chat_completion:non_streaming_01]"
ERROR_TEST = ("tests/integration/inference/test_provider_error_recording.py::TestProviderErrorRecording::"
              "test_provider_rejects_invalid_base64_image[txt=ollama/llama3.2:3b-instruct-fp16]")
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}], "stream": False}
Fake = tuple[UpstreamState, str]


@contextlib.contextmanager
def as_test(test_id: str | None, **provider_data: Any) -> Iterator[None]:
    """Serve the block as a request whose provider-data header carries ``test_id``."""
    data = {**provider_data, **({"__test_id": test_id} if test_id else {})}
    scope: dict[str, Any] = {"headers": [(b"x-llamastack-provider-data", json.dumps(data).encode())]}
    with bound_test_id(scope):
        yield


def ollama_chat(question: str, **extra: Any) -> UpstreamRequest:
    body = {"model": "llama3.2:3b-instruct-fp16", "messages": [{"role": "user", "content": question}], **extra}
    return post(OLLAMA, "/chat/completions", body)


# ---- reading llama-stack v0.7.1's files --------------------------------------------------------------


def test_the_plan_keeps_116_of_llama_stacks_125_recordings_and_one_derived_download() -> None:
    assert len(V071_FILES) == 117
    assert sum(1 for p in V071_FILES if p.parent.parent.name == "inference") == 116


@pytest.mark.parametrize("path", V071_FILES, ids=lambda p: p.stem[:12])
def test_every_file_is_named_as_llama_stack_looks_it_up(path: Path) -> None:
    rec = load_recording(path)
    assert rec.per_test and rec.has_expected_name


async def test_the_test_id_picks_that_tests_answer() -> None:
    upstream = replayer(V071)
    with as_test(CHAT_TEST):
        response = await upstream.send(ollama_chat("Which planet do humans live on?", stream=False))
    assert response.headers["x-relaystack-recording"].startswith("a2e6e4b90273")  # that test's own file
    assert "Earth" in json.loads(await response.read())["choices"][0]["message"]["content"]


async def test_another_tests_recording_is_never_used() -> None:
    upstream = replayer(V071)
    other = CHAT_TEST.replace("openai_client", "client_with_models")
    with as_test(other.replace("non_streaming_01", "non_streaming_99")), pytest.raises(ReplayMissError) as caught:
        await upstream.send(ollama_chat("Which planet do humans live on?", stream=False))
    assert "non_streaming_99" in caught.value.message and "test_id" in caught.value.message


async def test_without_a_test_id_content_matching_stays() -> None:
    upstream = replayer(V071)
    response = await upstream.send(ollama_chat("Which planet do humans live on?", stream=False))
    assert response.status == 200 and "Earth" in json.loads(await response.read())["choices"][0]["message"]["content"]


async def test_native_ollama_calls_match_as_llama_stack_named_them() -> None:
    upstream = replayer(V071)
    with as_test(CHAT_TEST):
        response = await upstream.send(get("http://localhost:11434", "/api/ps"))
    assert [m["model"] for m in json.loads(await response.read())["models"]][:1] == ["llama3.2:3b"]
    identity = identity_of_request(get("http://localhost:11434", "/api/ps"))
    assert (identity.method, identity.endpoint, identity.body) == ("POST", "/api/ps", {})


async def test_a_tests_model_listings_are_merged() -> None:
    upstream = replayer(V071)
    reasoning = T + "test_openai_chat_completion_reasoning_passthrough[txt=ollama/gpt-oss:20b]"
    with as_test(reasoning):
        response = await upstream.send(get("https://api.openai.com/v1", "/models"))
    listing = json.loads(await response.read())
    ids = [m["id"] for m in listing["data"]]
    assert listing["object"] == "list" and ids == sorted(ids) and len(ids) == len(set(ids))
    files = [p for p in V071_FILES if p.name.startswith("models-9c821")]
    assert len(files) == 2  # two recordings, different model sets: the union is served
    union = {m["__data__"]["id"] for p in files for m in json.loads(p.read_text())["response"]["body"]}
    assert set(ids) == union


async def test_a_recorded_provider_error_replays_as_its_status_and_body() -> None:
    upstream = replayer(V071)
    bad = [{"type": "text", "text": "What is in this image?"},
           {"type": "image_url", "image_url": {"url": "data:image/png;base64,not_valid_base64_data!!!"}}]
    request = post(OLLAMA, "/chat/completions", {"model": "llama3.2:3b-instruct-fp16",
                                                 "messages": [{"role": "user", "content": bad}]})
    with as_test(ERROR_TEST):
        response = await upstream.send(request)
    assert response.status == 400
    assert json.loads(await response.read()) == {"error": {
        "message": "invalid image input", "type": "invalid_request_error", "param": None, "code": None}}


def test_nulls_and_an_empty_extra_body_do_not_change_the_match() -> None:
    a = identity_of_request(post(OLLAMA, "/chat/completions", {"model": "m", "messages": [
        {"role": "assistant", "content": "x", "refusal": None, "tool_calls": None}]}))
    b = identity_of_request(post(OLLAMA, "/chat/completions", {"model": "m", "messages": [
        {"role": "assistant", "content": "x"}], "extra_body": {}}))
    assert a.match_key() == b.match_key()


def test_the_hash_follows_llama_stacks_rules() -> None:
    listing = per_test_hash("POST", "http://h:11434/api/tags", {}, "t1")
    assert listing == per_test_hash("POST", "http://h:11434/api/tags", {}, "t2")  # shared endpoint
    assert per_test_hash("POST", "http://h/v1/v1/models", {}, "t1") != per_test_hash("POST", "http://h/v1/v1/models",
                                                                                    {}, "t2")
    floats = {"messages": [{"content": "score 0.123456789"}], "temperature": 0.7000001}
    assert per_test_hash("POST", "http://h/x", floats, "t") == per_test_hash(
        "POST", "http://h/x", {"messages": [{"content": "score 0.12346"}], "temperature": 0.7}, "t")
    bedrock = "https://bedrock-runtime.us-east-1.amazonaws.com/openai/v1/chat/completions"
    assert per_test_hash("POST", bedrock, {"stream_options": {"include_usage": True}}, "t") == per_test_hash(
        "POST", bedrock, {}, "t")


# ---- where files go ------------------------------------------------------------------------------------


def test_per_test_folders_and_the_fallback(tmp_path: Path) -> None:
    assert per_test_dir(tmp_path, "tests/integration/inference/test_x.py::t") == (
        tmp_path / "tests/integration/inference/recordings")
    llama = tmp_path / "repo" / "tests" / "integration" / "common"
    llama.mkdir(parents=True)
    assert per_test_dir(llama, "tests/integration/inference/test_x.py::t") == (
        (tmp_path / "repo" / "tests/integration/inference/recordings").resolve())
    for hostile in ("../../etc/x.py::t", "/etc/x.py::t", "tests/../../x.py::t", "C:/x.py::t"):
        assert per_test_dir(tmp_path, hostile) is None


def test_the_format_follows_the_folder(tmp_path: Path) -> None:
    assert RecordingStore(tmp_path / "empty").format is RecordingFormat.SEED
    copy = tmp_path / "v071"
    shutil.copytree(V071, copy)
    assert RecordingStore(copy).format is RecordingFormat.PER_TEST
    assert RecordingStore(copy, RecordingFormat.SEED).format is RecordingFormat.SEED
    shared = Path(__file__).resolve().parents[1] / "recordings" / "together"
    assert RecordingStore(shared).format is RecordingFormat.SEED


def test_the_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"RELAYSTACK_RECORDING_FORMAT": "per-test"}
    assert RecordingSettings.from_env("record", "d", env).format is RecordingFormat.PER_TEST
    with pytest.raises(ConfigError, match="per-test"):
        RecordingSettings.from_env("record", "d", {"RELAYSTACK_RECORDING_FORMAT": "v2"})


def test_the_test_id_leaves_the_header_and_lives_for_the_request() -> None:
    data = {"together_api_key": "k-123", "__test_id": "tests/a.py::b"}
    scope: dict[str, Any] = {"headers": [(b"X-LlamaStack-Provider-Data", json.dumps(data).encode()),
                                         (b"accept", b"*/*")]}
    with bound_test_id(scope) as found:
        assert found == current_test_id() == "tests/a.py::b"
        assert json.loads(scope["headers"][0][1]) == {"together_api_key": "k-123"}
    assert current_test_id() is None
    only: dict[str, Any] = {"headers": [(b"x-ogx-provider-data", b'{"__test_id": "tests/a.py::c"}')]}
    with bound_test_id(only) as found:
        assert found == "tests/a.py::c" and only["headers"] == []
    broken: dict[str, Any] = {"headers": [(b"x-llamastack-provider-data", b'{"__test_id": oops')]}
    with bound_test_id(broken) as found:
        assert found is None and broken["headers"][0][1] == b'{"__test_id": oops'  # the API layer says 400


# ---- recording in the per-test format -------------------------------------------------------------------


def recorder(inner: Any, directory: Path) -> RecordingUpstream:
    settings = RecordingSettings(RecordMode.RECORD, directory, format=RecordingFormat.PER_TEST)
    upstream = wrap_upstream(inner, settings)
    assert isinstance(upstream, RecordingUpstream)
    return upstream


async def test_a_call_is_written_beside_its_test(fake_upstream: Fake, live: HttpUpstream, tmp_path: Path) -> None:
    _, base = fake_upstream
    with as_test("tests/unit/test_a.py::test_b[x]"):
        wire = json.loads(await (await recorder(live, tmp_path).send(post(base, "/chat/completions", CHAT))).read())
    [path] = recording_files(tmp_path)
    assert path.parent == tmp_path / "tests/unit/recordings" and len(path.stem) == 64
    doc = json.loads(path.read_text())
    assert list(doc) == ["test_id", "request", "response", "id_normalization_mapping"]
    assert doc["test_id"] == "tests/unit/test_a.py::test_b[x]"
    assert path.stem == per_test_hash("POST", doc["request"]["url"], doc["request"]["body"], doc["test_id"])
    with as_test("tests/unit/test_a.py::test_b[x]"):
        assert json.loads(await (await replayer(tmp_path).send(post(base, "/chat/completions", CHAT))).read()) == wire


async def test_an_upstream_error_is_recorded_and_replayed_exactly(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    state, base = fake_upstream
    state.fail_status = 429
    with as_test("tests/t.py::busy"):
        response = await recorder(live, tmp_path).send(post(base, "/chat/completions", CHAT))
        recorded_body = await response.read()
    assert response.status == 429 and response.headers["Retry-After"] == "1"
    [path] = recording_files(tmp_path)
    doc = json.loads(path.read_text())["response"]
    assert doc["is_exception"] is True and doc["body"] is None
    data = doc["exception_data"]
    assert (data["category"], data["type"], data["status_code"]) == ("provider_sdk", "RateLimitError", 429)
    assert data["body"]["message"] == "Rate limited." and data["headers"] == {"retry-after": "1"}
    assert doc["exception_message"].startswith("Error code: 429 - {'error': {'message': 'Rate limited.'")
    with as_test("tests/t.py::busy"):
        replayed = await replayer(tmp_path).send(post(base, "/chat/completions", CHAT))
    assert (replayed.status, replayed.headers["Retry-After"]) == (429, "1")
    assert await replayed.read() == recorded_body.replace(b": ", b":").replace(b", ", b",")


async def test_an_error_never_replaces_a_recorded_success(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    state, base = fake_upstream
    rec = recorder(live, tmp_path)
    with as_test("tests/t.py::same"):
        await (await rec.send(post(base, "/chat/completions", CHAT))).read()
        good = recording_files(tmp_path)[0].read_text()
        state.fail_status = 500
        assert (await rec.send(post(base, "/chat/completions", CHAT))).status == 500
    assert recording_files(tmp_path)[0].read_text() == good


async def test_a_refused_connection_replays_as_the_same_failure(live: HttpUpstream, tmp_path: Path) -> None:
    with as_test("tests/t.py::down"), pytest.raises(UpstreamConnectionError):
        await recorder(live, tmp_path).send(post("http://127.0.0.1:9/v1", "/chat/completions", CHAT))
    [path] = recording_files(tmp_path)
    assert json.loads(path.read_text())["response"]["exception_data"]["type"] == "APIConnectionError"
    with as_test("tests/t.py::down"), pytest.raises(UpstreamConnectionError, match="replayed from recording"):
        await replayer(tmp_path).send(post("http://127.0.0.1:9/v1", "/chat/completions", CHAT))


async def test_a_stream_that_broke_replays_its_chunks_then_the_break(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    state, base = fake_upstream
    state.cut_after = 3
    stream = {**CHAT, "stream": True}
    with as_test("tests/t.py::cut"):
        response = await recorder(live, tmp_path).send(post(base, "/chat/completions", stream))
        with pytest.raises(UpstreamConnectionError):
            await sse_payloads(response)
        replayed = await replayer(tmp_path).send(post(base, "/chat/completions", stream))
    pieces = []
    with pytest.raises(UpstreamConnectionError):
        async for piece in replayed.iter_chunks():
            pieces.append(piece)
    assert len(pieces) == 3 and b"[DONE]" not in b"".join(pieces)


async def test_a_timeout_replays_as_a_timeout(tmp_path: Path) -> None:
    class Stalled:
        async def send(self, request: Any) -> Any:
            raise UpstreamTimeoutError("The upstream did not send data within 1 s.")

        async def aclose(self) -> None:
            pass

    with as_test("tests/t.py::slow"), pytest.raises(UpstreamTimeoutError):
        await recorder(Stalled(), tmp_path).send(post("http://h/v1", "/chat/completions", CHAT))
    with as_test("tests/t.py::slow"), pytest.raises(UpstreamTimeoutError, match="replayed"):
        await replayer(tmp_path).send(post("http://h/v1", "/chat/completions", CHAT))


async def test_a_hostile_test_id_writes_to_the_shared_folder(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    _, base = fake_upstream
    with as_test("../../outside.py::t"):
        await (await recorder(live, tmp_path / "rec").send(post(base, "/chat/completions", CHAT))).read()
    [path] = recording_files(tmp_path / "rec")
    assert path.parent == tmp_path / "rec" / "recordings"
    assert not any(p.name.startswith("outside") for p in tmp_path.parent.iterdir())


async def test_a_listing_is_named_with_its_model_digest_and_keeps_its_shape(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    _, base = fake_upstream
    with as_test("tests/t.py::models"):
        wire = json.loads(await (await recorder(live, tmp_path).send(get(base, "/models"))).read())
    [path] = recording_files(tmp_path)
    assert path.name.startswith("models-") and path.name.count("-") == 2
    assert json.loads(path.read_text())["response"]["envelope"] is None  # a bare array on the wire
    with as_test("tests/t.py::models"):
        assert json.loads(await (await replayer(tmp_path).send(get(base, "/models"))).read()) == wire


async def test_a_download_is_kept_byte_for_byte(tmp_path: Path) -> None:
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

    class Images:
        async def send(self, request: Any) -> Any:
            return ReplayResponse(200, {"content-type": "image/png"}, [image], stream=False)

        async def aclose(self) -> None:
            pass

    url = "https://images.example/dog.png"
    with as_test("tests/t.py::img"):
        assert await (await recorder(Images(), tmp_path).send(UpstreamRequest("GET", url, {}))).read() == image
        replayed = await wrap_upstream(ExplodingUpstream(), RecordingSettings(RecordMode.REPLAY, tmp_path)).send(
            UpstreamRequest("GET", url, {}))
    assert await replayed.read() == image and replayed.headers["content-type"] == "image/png"
