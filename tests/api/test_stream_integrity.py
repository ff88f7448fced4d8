"""A stream is a success only if every event was a valid chunk; what is stored can always be read.

Through a real `relaystack run` and the fake Together sending raw SSE bytes: a malformed event
anywhere fails the stream (the client gets no invalid JSON, an error event last, no [DONE], no
fake stop) and nothing is stored; a failed store is logged with the id and counted in /v1/health.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import orjson
import pytest

from support.stack import CHAT_MODEL, Stack

HELLO = [{"role": "user", "content": "Hello, world!"}]


def chunk(i: int, *, finish: str | None = None, cid: str = "chat-integrity", **delta: Any) -> bytes:
    event = {"id": cid, "object": "chat.completion.chunk", "created": 1, "model": "up",
             "choices": [{"index": 0, "delta": delta or {"content": f"t{i} "}, "finish_reason": finish}]}
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


def good(n: int, cid: str = "chat-integrity") -> list[bytes]:
    return [chunk(i, cid=cid) for i in range(n)]


def finish(cid: str = "chat-integrity") -> bytes:
    return chunk(99, finish="stop", cid=cid) + b"data: [DONE]\n\n"


BAD_EVENTS = {
    "not json": b"data: {not json\n\n",
    "null": b"data: null\n\n",
    "array": b"data: [1, 2]\n\n",
    "string": b'data: "hello"\n\n',
    "choices is a string": b'data: {"id":"x","choices":"abc"}\n\n',
    "delta is a string": b'data: {"id":"x","choices":[{"index":0,"delta":"abc"}]}\n\n',
    "index is a list": b'data: {"id":"x","choices":[{"index":[0],"delta":{"content":"a"}}]}\n\n',
    "content is a number": b'data: {"id":"x","choices":[{"index":0,"delta":{"content":5}}]}\n\n',
    "tool_calls is an object": b'data: {"id":"x","choices":[{"index":0,"delta":{"tool_calls":{}}}]}\n\n',
    "no choices": b'data: {"id":"x","object":"chat.completion.chunk"}\n\n',
    "half an object per event": b'data: {"id":"x","choices":[\n\ndata: ]}\n\n',
    "json split over lines": b'data: {"id":"x",\n"choices":[]}\n\n',
}


def data_lines(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def last_error(response: httpx.Response, *, upstream_finished: bool = False) -> dict[str, Any]:
    """The error a failed stream ended with: a JSON error with a 5xx status when it failed before
    its first event, else an error event after valid events (never [DONE], never invalid JSON)."""
    if response.headers["content-type"].startswith("application/json"):
        assert response.status_code == 502, response.text
        return response.json()["error"]  # type: ignore[no-any-return]
    assert response.status_code == 200
    lines = data_lines(response.text)
    assert "[DONE]" not in lines
    parsed = [orjson.loads(line) for line in lines]  # every data line the client got is JSON
    assert all(isinstance(p, dict) for p in parsed)
    assert upstream_finished or not any(c.get("finish_reason") for p in parsed for c in p.get("choices") or [])
    assert "error" in parsed[-1], parsed[-1]
    return parsed[-1]["error"]  # type: ignore[no-any-return]


def stored_ids(stack: Stack) -> set[str]:
    page = httpx.get(f"{stack.base_url}/v1/chat/completions", params={"limit": 100}).json()
    return {item["id"] for item in page["data"]}


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("name", sorted(BAD_EVENTS))
def test_a_malformed_event_fails_the_stream_and_nothing_is_stored(
    either_proof_stack: Stack, name: str, where: str
) -> None:
    stack = either_proof_stack
    cid = f"chat-bad-{abs(hash((name, where)))}"
    events = good(300, cid)
    at = {"first": 0, "middle": 150, "last": 300}[where]
    events.insert(at, BAD_EVENTS[name])
    # one write: the whole stream arrives as one or two large blocks (an event early in a block)
    stack.fake.stream_raw_next(b"".join(events) + finish(cid))
    response = httpx.post(f"{stack.base_url}/v1/chat/completions",
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    assert last_error(response)["code"] == "upstream_malformed_event"
    assert cid not in stored_ids(stack)


@pytest.mark.parametrize("hole", [b"tab\there", b"\xff", b"\xed\xa0\x80", b"\\ud800", b'a"b', b"a\\", b"\\x41"])
def test_a_malformed_text_event_shaped_as_the_others_fails_the_stream(either_proof_stack: Stack, hole: bytes) -> None:
    """The template's bytes around a hole that is not one JSON string, amid 300 text events proven
    against the template: the stream fails, nothing invalid reaches the client, nothing is stored."""
    stack = either_proof_stack
    cid = f"chat-bad-hole-{abs(hash(hole))}"
    events = good(300, cid)
    events[150] = chunk(150, cid=cid).replace(b'"t150 "', b'"' + hole + b'"')
    assert events[150] != chunk(150, cid=cid)
    stack.fake.stream_raw_next(b"".join(events) + finish(cid))
    response = httpx.post(f"{stack.base_url}/v1/chat/completions",
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    assert last_error(response)["code"] == "upstream_malformed_event"
    assert cid not in stored_ids(stack)


def test_the_openai_sdk_raises_on_a_malformed_stream(stack: Stack) -> None:
    stack.fake.stream_raw_next(b"".join(good(3)) + BAD_EVENTS["delta is a string"] + finish())
    client = openai.OpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIError, match="wrong shape"):
        for _ in client.chat.completions.create(model=CHAT_MODEL, messages=HELLO, stream=True):
            pass


def test_a_malformed_stream_is_counted_in_health(stack: Stack) -> None:
    before = httpx.get(f"{stack.base_url}/v1/health").json()["counters"]["malformed_streams"]
    stack.fake.stream_raw_next(b"".join(good(2)) + BAD_EVENTS["null"] + finish())
    httpx.post(f"{stack.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    assert httpx.get(f"{stack.base_url}/v1/health").json()["counters"]["malformed_streams"] == before + 1


def test_comments_crlf_and_multiline_events_are_valid_and_relayed_one_line_each(stack: Stack) -> None:
    cid = "chat-crlf-ok"
    raw = (b": keep-alive\r\n\r\n" + chunk(0, cid=cid).replace(b"\n", b"\r\n")
           + b'event: message\ndata: {"id":"chat-crlf-ok","object":"chat.completion.chunk","created":1,\n'
           + b'data: "model":"up","choices":[{"index":0,"delta":{"content":"two"},"finish_reason":null}]}\n\n'
           + finish(cid))
    stack.fake.stream_raw_next(raw[:50], raw[50:51], raw[51:])
    response = httpx.post(f"{stack.base_url}/v1/chat/completions",
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    lines = data_lines(response.text)
    assert lines[-1] == "[DONE]"
    parsed = [orjson.loads(line) for line in lines[:-1]]
    assert [p["choices"][0]["delta"].get("content") for p in parsed] == ["t0 ", "two", "t99 "]
    assert all(p["model"] == CHAT_MODEL for p in parsed)
    stored = httpx.get(f"{stack.base_url}/v1/chat/completions/{cid}").json()
    assert stored["choices"][0]["message"]["content"] == "t0 twot99 "


def test_a_stream_whose_last_choice_did_not_finish_is_incomplete(stack: Stack) -> None:
    # a finish_reason, then more content, then the connection ends: not a finished answer
    stack.fake.stream_raw_next(chunk(0) + chunk(1, finish="stop") + chunk(2))
    response = httpx.post(f"{stack.base_url}/v1/chat/completions",
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    assert "ended before it finished" in last_error(response, upstream_finished=True)["message"]


def test_a_stream_that_cannot_be_stored_is_logged_with_its_id_and_counted(stack: Stack) -> None:
    before = httpx.get(f"{stack.base_url}/v1/health").json()["counters"]["store_failures"]
    # valid chunks whose id is not a string: the client gets its answer, the store cannot keep it
    stream = b"".join(e.replace(b'"id":"chat-integrity"', b'"id":12345') for e in [*good(2), finish()])
    stack.fake.stream_raw_next(stream)
    response = httpx.post(f"{stack.base_url}/v1/chat/completions",
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    assert data_lines(response.text)[-1] == "[DONE]"
    health = httpx.get(f"{stack.base_url}/v1/health").json()
    assert health["counters"]["store_failures"] == before + 1
    assert "Could not store streamed chat completion 12345" in stack.server.log()
