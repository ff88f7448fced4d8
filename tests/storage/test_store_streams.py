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


BAD_ROWS = {
    "choices is a string": b'data: {"id":"bad","choices":"abc"}\n\n',
    "delta is a string": b'data: {"id":"bad","choices":[{"index":0,"delta":"abc"}]}\n\n',
    "index is a list": b'data: {"id":"bad","choices":[{"index":[0],"delta":{"content":"a"}}]}\n\n',
    "not json": b"data: {not json\n\n",
    "null": b"data: null\n\n",
    "array": b"data: [1, 2]\n\n",
}


@pytest.mark.parametrize("name", sorted(BAD_ROWS))
async def test_a_row_that_cannot_be_assembled_is_marked_logged_once_and_the_page_served(
    store: MemoryStore | SqliteStore, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Defence in depth: rows stored before events were checked (or damaged) never fail a read."""
    bad_id = f"bad-{type(store).__name__}-{abs(hash(name))}"
    await store.put_stream("good-1", 1, "caller", events("good-1", ["a"]), [])
    await store.put_stream(bad_id, 2, "caller", events(bad_id, ["x"]) + BAD_ROWS[name], [{"role": "user"}])
    await store.put_stream("good-2", 3, "caller", events("good-2", ["b"]), [])
    with caplog.at_level("ERROR", logger="relaystack.storage"):
        page = await store.list_completions(limit=10)
        again = await store.list_completions(limit=10)
        got = await store.get_completion(bad_id)
    assert [item["id"] for item in page["data"]] == ["good-2", bad_id, "good-1"]
    assert page == again
    marked = page["data"][1]
    assert marked["choices"] == [] and marked["created"] == 2 and marked["model"] == "caller"
    assert "could not be read" in marked["relaystack_unreadable"]
    assert got == marked
    assert page["data"][0]["choices"][0]["message"]["content"] == "b"
    logged = [r for r in caplog.records if bad_id in r.getMessage()]
    assert len(logged) == 1
