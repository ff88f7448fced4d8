"""The file format both ways, and SSE collection however the bytes are split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai.types.chat.chat_completion import ChatCompletion
from openai.types.chat.chat_completion_chunk import ChatCompletionChunk
from openai.types.create_embedding_response import CreateEmbeddingResponse

from relaystack.recording.codec import (
    TYPE_CHAT,
    TYPE_CHUNK,
    TYPE_COMPLETION,
    TYPE_EMBEDDINGS,
    TYPE_MODEL,
    RecordingFormatError,
    SSECollector,
    build_response,
    dump_document,
    load_recording,
    parse_document,
)
from relaystack.recording.identity import identity_of_request

from .conftest import SHARED_FILES, TOGETHER, llama_deserialize, post

CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "vendor_field": {"kept": True}}
CHUNKS = [
    {"id": "c2", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]},
    {"id": "c2", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "stop"}],
     "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
]


def _round_trip(tmp_path: Path, op: str, payload: object, *, streaming: bool) -> tuple[dict, object]:
    identity = identity_of_request(post(TOGETHER, op, {"model": "m", "stream": streaming}))
    response = build_response(identity.operation, payload, streaming=streaming)
    path = tmp_path / f"{identity.short_hash}.json"
    path.write_text(dump_document(identity.to_record(), response))
    return json.loads(path.read_text()), load_recording(path)


def test_chat_completion_round_trip(tmp_path: Path) -> None:
    doc, rec = _round_trip(tmp_path, "/chat/completions", CHAT, streaming=False)
    assert doc["response"] == {"body": {"__type__": TYPE_CHAT, "__data__": CHAT}, "is_streaming": False}
    assert doc["request"]["headers"] == {}
    assert rec.wire_json() == CHAT
    assert not rec.replays_as_stream


def test_stream_round_trip(tmp_path: Path) -> None:
    doc, rec = _round_trip(tmp_path, "/chat/completions", CHUNKS, streaming=True)
    assert doc["response"]["is_streaming"] is True
    assert [c["__type__"] for c in doc["response"]["body"]] == [TYPE_CHUNK, TYPE_CHUNK]
    assert rec.items() == CHUNKS
    assert [json.loads(e.removeprefix(b"data: ")) for e in rec.sse_events()] == CHUNKS
    assert all(e.endswith(b"\n\n") and b"\n" not in e[:-2] for e in rec.sse_events())


def test_types_per_endpoint(tmp_path: Path) -> None:
    _, _ = _round_trip(tmp_path, "/completions", {"object": "text.completion"}, streaming=False)
    assert build_response("/completions", [{"a": 1}], streaming=True)["body"][0]["__type__"] == TYPE_COMPLETION
    assert build_response("/embeddings", {"data": []}, streaming=False)["body"]["__type__"] == TYPE_EMBEDDINGS
    assert build_response("/unknown", {"x": 1}, streaming=False)["body"] == {"x": 1}


def test_model_list_bare_array_and_envelope_round_trip(tmp_path: Path) -> None:
    models = [{"id": "a", "object": "model", "pricing": {"input": 1}}, {"id": "b", "object": "model"}]
    bare = build_response("/models", models, streaming=False)
    assert bare == {"body": [{"__type__": TYPE_MODEL, "__data__": m} for m in models], "is_streaming": True}
    enveloped = build_response("/models", {"object": "list", "data": models}, streaming=False)
    assert enveloped["envelope"] == {"object": "list"}
    for response, wire in ((bare, models), (enveloped, {"object": "list", "data": models})):
        identity = identity_of_request(post(TOGETHER, "/models", {}))
        rec = parse_document({"request": identity.to_record(), "response": response}, tmp_path / "m.json")
        assert rec.is_model_list and not rec.replays_as_stream
        assert rec.wire_json() == wire
    with pytest.raises(RecordingFormatError):
        build_response("/models", "nope", streaming=False)


def test_file_text_is_indent_2_with_trailing_newline(tmp_path: Path) -> None:
    text = dump_document({"method": "POST"}, {"body": {}, "is_streaming": False})
    assert text.endswith("}\n") and text.startswith('{\n  "request": {\n    "method": "POST"')


@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.stem)
def test_we_write_the_shared_files_byte_for_byte(path: Path) -> None:
    """Same dumper as llama-stack: re-dumping a parsed shared file gives the same bytes."""
    doc = json.loads(path.read_text())
    assert dump_document(doc["request"], doc["response"]) == path.read_text()


@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.stem)
def test_every_shared_file_loads(path: Path) -> None:
    rec = load_recording(path)
    assert rec.id == path.stem
    assert rec.identity.model == "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free" or "bert" in rec.identity.model
    if rec.is_streaming:
        assert rec.items() and rec.replays_as_stream


def test_llama_stack_reader_rebuilds_our_objects(tmp_path: Path) -> None:
    _, rec = _round_trip(tmp_path, "/chat/completions", CHAT, streaming=False)
    assert isinstance(llama_deserialize(rec.body), ChatCompletion)
    _, rec = _round_trip(tmp_path, "/chat/completions", CHUNKS, streaming=True)
    assert all(isinstance(llama_deserialize(c), ChatCompletionChunk) for c in rec.body)
    emb = {"object": "list", "model": "e", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
           "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    _, rec = _round_trip(tmp_path, "/embeddings", emb, streaming=False)
    assert isinstance(llama_deserialize(rec.body), CreateEmbeddingResponse)


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ([], "no 'request'"),
        ({"request": {"method": "POST", "url": "u"}}, "no 'response.body'"),
        ({"request": {"method": 1, "url": "u"}, "response": {"body": {}}}, "request.method"),
        ({"request": {"method": "POST", "url": "u", "body": []}, "response": {"body": {}}}, "request.body"),
        ({"request": {"method": "POST", "url": "u"}, "response": {"body": {}, "is_streaming": "yes"}}, "is_streaming"),
        ({"request": {"method": "POST", "url": "u"}, "response": {"body": {}, "is_streaming": True}}, "list of chunks"),
    ],
)
def test_malformed_documents_are_rejected_with_the_reason(doc: object, problem: str) -> None:
    with pytest.raises(RecordingFormatError, match=problem):
        parse_document(doc, Path("x.json"))


def test_unreadable_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"request": ')
    with pytest.raises(RecordingFormatError, match=r"broken\.json: not readable JSON"):
        load_recording(path)


# -- SSE collection ------------------------------------------------------------------------------

STREAM = b'data: {"a": 1}\n\n: keep-alive comment\n\nevent: message\ndata: {"b":\ndata: 2}\n\ndata: [DONE]\n\n'


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_collector_is_independent_of_how_bytes_are_split(size: int) -> None:
    collector = SSECollector()
    for i in range(0, len(STREAM), size):
        collector.feed(STREAM[i:i + size])
    collector.close()
    assert collector.payloads == [b'{"a": 1}', b'{"b":\n2}']
    assert collector.done


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_collector_handles_crlf_and_cr_even_split_between_pieces(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    for size in (1, 2, 5):
        collector = SSECollector()
        for i in range(0, len(stream), size):
            collector.feed(stream[i:i + size])
        collector.close()
        assert collector.payloads == [b'{"a": 1}', b'{"b":\n2}'], size
        assert collector.done


def test_collector_without_done_says_so() -> None:
    collector = SSECollector()
    collector.feed(b'data: {"a": 1}\n\n')
    collector.close()
    assert collector.payloads == [b'{"a": 1}'] and not collector.done
