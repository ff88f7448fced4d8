"""Record mode against a fake upstream on 127.0.0.1: what is written, and what is not."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat.chat_completion import ChatCompletion
from openai.types.chat.chat_completion_chunk import ChatCompletionChunk
from openai.types.completion import Completion
from openai.types.create_embedding_response import CreateEmbeddingResponse

from relaystack.errors import InvalidRequestError, UpstreamConnectionError
from relaystack.recording import RecordingSettings, RecordingUpstream, RecordMode, wrap_upstream
from relaystack.recording.codec import load_recording
from relaystack.recording.identity import identity_of_request
from relaystack.recording.responses import ReplayResponse
from relaystack.recording.store import RecordingStore
from relaystack.upstream.http_client import HttpUpstream

from .conftest import get, llama_deserialize, post, sse_payloads
from .fake_upstream import MODEL, MODELS, STREAM_WORDS, UpstreamState
from .test_replay import replayer

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}], "stream": False}
STREAM = {**CHAT, "stream": True}

Fake = tuple[UpstreamState, str]


def recorder(live: HttpUpstream, directory: Path) -> RecordingUpstream:
    upstream = wrap_upstream(live, RecordingSettings(RecordMode.RECORD, directory))
    assert isinstance(upstream, RecordingUpstream)
    return upstream


def files(directory: Path) -> list[Path]:
    return sorted((directory / "responses").glob("*.json")) if (directory / "responses").is_dir() else []


async def test_chat_is_written_where_llama_stack_looks_and_reads_back(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    _, base = fake_upstream
    response = await recorder(live, tmp_path).send(post(base, "/chat/completions", CHAT))
    wire = json.loads(await response.read())
    [path] = files(tmp_path)
    assert path.name == identity_of_request(post(base, "/chat/completions", CHAT)).short_hash + ".json"
    doc = json.loads(path.read_text())
    assert path.read_text().endswith("}\n")
    assert doc["request"] == {
        "method": "POST", "url": base.replace("/v1", "/v1/v1") + "/chat/completions", "headers": {},
        "body": CHAT, "endpoint": "/v1/chat/completions", "model": MODEL,
    }
    assert doc["response"]["is_streaming"] is False
    assert doc["response"]["body"]["__data__"] == wire
    assert isinstance(llama_deserialize(doc["response"]["body"]), ChatCompletion)
    assert load_recording(path).wire_json() == wire


async def test_stream_is_relayed_chunk_by_chunk_while_captured(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    state, base = fake_upstream
    state.hold_after_first = asyncio.Event()
    response = await recorder(live, tmp_path).send(post(base, "/chat/completions", STREAM))
    iterator = response.iter_chunks()
    first = await asyncio.wait_for(iterator.__anext__(), timeout=30)
    # the upstream is still holding the rest: we got the first chunk before the stream ended
    assert b'"Hello"' in first and not state.hold_after_first.is_set()
    assert files(tmp_path) == []
    state.hold_after_first.set()
    rest = b"".join([piece async for piece in iterator])
    assert rest.endswith(b"data: [DONE]\n\n")
    [path] = files(tmp_path)
    doc = json.loads(path.read_text())
    assert doc["response"]["is_streaming"] is True
    chunks = [c["__data__"] for c in doc["response"]["body"]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "".join(STREAM_WORDS)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["total_tokens"] == 12
    assert all(isinstance(llama_deserialize(c), ChatCompletionChunk) for c in doc["response"]["body"])


async def test_a_recorded_stream_replays_the_same_events(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    _, base = fake_upstream
    live_payloads = await sse_payloads(await recorder(live, tmp_path).send(post(base, "/chat/completions", STREAM)))
    replayed = await sse_payloads(await replayer(tmp_path).send(post(base, "/chat/completions", STREAM)))
    assert [json.loads(p) for p in replayed[:-1]] == [json.loads(p) for p in live_payloads[:-1]]
    assert replayed[-1] == live_payloads[-1] == b"[DONE]"


async def test_a_consumer_that_stops_at_done_still_gets_a_recording(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    """Relays (providers/sse_relay.py) return as soon as they see [DONE] and never resume the iterator."""
    _, base = fake_upstream
    response = await recorder(live, tmp_path).send(post(base, "/chat/completions", STREAM))
    async for piece in response.iter_chunks():
        if b"[DONE]" in piece:
            break
    await response.aclose()
    [path] = files(tmp_path)
    assert len(json.loads(path.read_text())["response"]["body"]) == len(STREAM_WORDS) + 1


async def test_a_stream_read_with_read_is_recorded_too(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    _, base = fake_upstream
    body = await (await recorder(live, tmp_path).send(post(base, "/chat/completions", STREAM))).read()
    assert body.endswith(b"data: [DONE]\n\n")
    [path] = files(tmp_path)
    assert len(json.loads(path.read_text())["response"]["body"]) == len(STREAM_WORDS) + 1


async def test_completions_embeddings_and_models_are_recorded_and_replayed(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    _, base = fake_upstream
    rec = recorder(live, tmp_path)
    requests = [
        post(base, "/completions", {"model": MODEL, "prompt": "Roses are red", "stream": False}),
        post(base, "/embeddings", {"model": "e", "input": ["a", "b"]}),
        get(base, "/models", {"Authorization": "Bearer secret-key-123456"}),
    ]
    answers = [json.loads(await (await rec.send(r)).read()) for r in requests]
    assert len(files(tmp_path)) == 3
    docs = {json.loads(p.read_text())["request"]["endpoint"]: json.loads(p.read_text()) for p in files(tmp_path)}
    assert isinstance(llama_deserialize(docs["/v1/completions"]["response"]["body"]), Completion)
    assert isinstance(llama_deserialize(docs["/v1/embeddings"]["response"]["body"]), CreateEmbeddingResponse)
    models = docs["/v1/models"]
    assert models["request"]["method"] == "POST" and models["request"]["body"] == {}
    assert [m["__type__"] for m in models["response"]["body"]] == ["openai.types.model.Model"] * 2
    assert [llama_deserialize(m) for m in models["response"]["body"]] == MODELS  # no owned_by: raw fallback
    assert answers[2] == MODELS
    replay = replayer(tmp_path)
    for request, answer in zip(requests, answers, strict=True):
        assert json.loads(await (await replay.send(request)).read()) == answer


async def test_a_model_list_envelope_keeps_its_shape(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    state, base = fake_upstream
    state.models_envelope = True
    await (await recorder(live, tmp_path).send(get(base, "/models"))).read()
    replayed = json.loads(await (await replayer(tmp_path).send(get(base, "/models"))).read())
    assert replayed == {"object": "list", "data": MODELS}


async def test_the_same_request_twice_gives_one_stable_file(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    _, base = fake_upstream
    rec = recorder(live, tmp_path)
    await (await rec.send(post(base, "/chat/completions", CHAT))).read()
    first = files(tmp_path)
    reordered = {"stream": False, "messages": CHAT["messages"], "model": MODEL}
    await (await rec.send(post(base, "/chat/completions", reordered))).read()
    assert files(tmp_path) == first and len(first) == 1
    assert rec.written == first * 2


async def _consume(response: Any) -> bytes:
    return b"".join([piece async for piece in response.iter_chunks()])


async def test_upstream_errors_pass_through_and_are_not_written(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, base = fake_upstream
    rec = recorder(live, tmp_path)
    await (await rec.send(post(base, "/chat/completions", CHAT))).read()
    good = files(tmp_path)[0].read_text()
    state.fail_status = 429
    caplog.set_level(logging.WARNING, logger="relaystack.recording")
    response = await rec.send(post(base, "/chat/completions", CHAT))
    assert response.status == 429 and response.headers["Retry-After"] == "1"
    assert json.loads(await response.read())["error"]["type"] == "rate_limit_error"
    assert files(tmp_path)[0].read_text() == good  # the good recording survives
    assert any("answered 429" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("setting", "reason"),
    [("unfinished", "without [DONE] before it finished"), ("inband_error", "in-band error")],
)
async def test_unfinished_or_failed_streams_are_not_written(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    setting: str, reason: str,
) -> None:
    state, base = fake_upstream
    setattr(state, setting, True)
    caplog.set_level(logging.WARNING, logger="relaystack.recording")
    await _consume(await recorder(live, tmp_path).send(post(base, "/chat/completions", STREAM)))
    assert files(tmp_path) == []
    assert any(reason in r.getMessage() for r in caplog.records)


async def test_a_finished_stream_without_done_is_written_and_replays_without_done(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    """watsonx ends its streams with the body, never with [DONE]: recorded and replayed as sent."""
    state, base = fake_upstream
    state.no_done = True
    relayed = await _consume(await recorder(live, tmp_path).send(post(base, "/chat/completions", STREAM)))
    [path] = files(tmp_path)
    assert json.loads(path.read_text())["response"]["done_event"] is False
    replayed = await _consume(await replayer(tmp_path).send(post(base, "/chat/completions", STREAM)))
    assert b"[DONE]" not in relayed and b"[DONE]" not in replayed
    events = [json.loads(e.removeprefix(b"data: ")) for e in replayed[:-2].split(b"\n\n")]
    assert events == [json.loads(e.removeprefix(b"data: ")) for e in relayed[:-2].split(b"\n\n")]
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


async def test_a_cut_stream_raises_to_the_consumer_and_writes_nothing(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    state, base = fake_upstream
    state.cut_after = 3
    response = await recorder(live, tmp_path).send(post(base, "/chat/completions", STREAM))
    with pytest.raises(UpstreamConnectionError):
        await _consume(response)
    assert files(tmp_path) == []


async def test_a_consumer_that_stops_early_writes_nothing(
    fake_upstream: Fake, live: HttpUpstream, tmp_path: Path
) -> None:
    state, base = fake_upstream
    state.hold_after_first = asyncio.Event()  # so the first piece cannot already hold [DONE]
    response = await recorder(live, tmp_path).send(post(base, "/chat/completions", STREAM))
    iterator = response.iter_chunks()
    assert b"[DONE]" not in await iterator.__anext__()
    await iterator.aclose()  # type: ignore[attr-defined]
    await response.aclose()
    state.hold_after_first.set()
    assert files(tmp_path) == []


async def test_a_non_json_body_is_not_written(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Inner:
        async def send(self, request: Any) -> Any:
            return ReplayResponse(200, {"content-type": "text/html"}, [b"<html>oops</html>"], stream=False)

        async def aclose(self) -> None:
            pass

    caplog.set_level(logging.WARNING, logger="relaystack.recording")
    rec = RecordingUpstream(Inner(), RecordingStore(tmp_path))
    assert await (await rec.send(post("http://h/v1", "/chat/completions", CHAT))).read() == b"<html>oops</html>"
    assert files(tmp_path) == []
    assert any("not JSON" in r.getMessage() for r in caplog.records)


async def test_fault_header_is_refused_while_recording(live: HttpUpstream, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="only honoured in replay mode"):
        await recorder(live, tmp_path).send(post("http://127.0.0.1:1/v1", "/chat/completions", CHAT, fault="stall=1"))
