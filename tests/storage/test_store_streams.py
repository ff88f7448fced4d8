"""Streamed completions are stored as their events and read back assembled, by every store."""

from __future__ import annotations

import orjson
import pytest

from relaystack.storage.memory import MemoryStore
from relaystack.storage.sqlite import SqliteStore


def events(completion_id: str, text: list[str], *, tool: bool = False) -> bytes:
    chunks: list[dict[str, object]] = []
    for piece in text:
        chunks.append({"id": completion_id, "object": "chat.completion.chunk", "created": 7, "model": "caller",
                       "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    if tool:
        for delta in ({"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}},
                      {"index": 0, "function": {"arguments": '{"a":'}}, {"index": 0, "function": {"arguments": "1}"}}):
            chunks.append({"id": completion_id, "created": 7, "model": "caller",
                           "choices": [{"index": 0, "delta": {"tool_calls": [delta]}, "finish_reason": None}]})
    chunks.append({"id": completion_id, "created": 7, "model": "caller",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool else "stop"}]})
    chunks.append({"id": completion_id, "created": 7, "model": "caller", "choices": [],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)


# the `store` fixture (tests/storage/conftest.py) runs these against every implementation


async def test_a_stored_stream_reads_back_assembled(store: MemoryStore | SqliteStore) -> None:
    await store.put_stream("chatcmpl-s1", 7, "caller", events("chatcmpl-s1", ["Hel", "lo", "!"]),
                           [{"role": "user", "content": "hi"}])
    got = await store.get_completion("chatcmpl-s1")
    assert got["object"] == "chat.completion" and got["model"] == "caller" and got["created"] == 7
    assert got["choices"][0]["message"]["content"] == "Hello!"
    assert got["choices"][0]["finish_reason"] == "stop"
    assert got["usage"]["total_tokens"] == 5
    assert got["input_messages"] == [{"role": "user", "content": "hi"}]


async def test_tool_call_deltas_are_merged_and_lists_mix_both_kinds(store: MemoryStore | SqliteStore) -> None:
    await store.put_completion({"id": "chatcmpl-j", "object": "chat.completion", "created": 7, "model": "caller",
                                "choices": []}, [])
    await store.put_stream("chatcmpl-t", 7, "caller", events("chatcmpl-t", [], tool=True), [])
    page = await store.list_completions(order="asc", model="caller")
    assert [row["id"] for row in page["data"]] == ["chatcmpl-j", "chatcmpl-t"]
    call = page["data"][1]["choices"][0]["message"]["tool_calls"][0]
    assert call == {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}


async def test_stream_events_must_look_like_events(store: MemoryStore | SqliteStore) -> None:
    with pytest.raises(ValueError, match="data:"):
        await store.put_stream("x", 1, "m", b'{"not": "events"}', [])
