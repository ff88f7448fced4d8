"""A stored stream keeps its text events packed, and reads back exactly what the client got."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from fakes.fake_together import DEFAULT_API_KEY
from relaystack.stored_stream import MAGIC, expand
from support.stack import CHAT_MODEL, Stack

HELLO = [{"role": "user", "content": "hello"}]


def event(cid: str, **choice: object) -> bytes:
    body = {"id": cid, "object": "chat.completion.chunk", "created": 7, "model": "up",
            "choices": [{"index": 0, "finish_reason": None, **choice}]}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def upstream_stream(cid: str, texts: list[str]) -> bytes:
    return (event(cid, delta={"role": "assistant", "content": ""})
            + b"".join(event(cid, delta={"content": text}) for text in texts)
            + event(cid, delta={}, finish_reason="stop") + b"data: [DONE]\n\n")


def stored_blob(stack: Stack, cid: str) -> bytes:
    (db,) = [p for p in stack.home.rglob("*.db") if "inference" in p.name or p.parent.name != "keys"][:1]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (blob,) = conn.execute("SELECT completion FROM chat_completions WHERE id = ?", (cid,)).fetchone()
    return bytes(blob)


@pytest.mark.parametrize("pieces", [1, 7])
def test_a_stored_stream_is_packed_and_reads_back_the_bytes_the_client_got(stack: Stack, pieces: int) -> None:
    cid = f"chat-packed-{pieces}"
    # quotes, escapes, UTF-8 and the provider's key in the text: the client gets it redacted
    texts = [f"t{i} \"q\" \\ é\t" for i in range(60)] + [f"key {DEFAULT_API_KEY} here", "end"]
    raw = upstream_stream(cid, texts)
    size = len(raw) // pieces + 1
    stack.fake.stream_raw_next(*[raw[i : i + size] for i in range(0, len(raw), size)])
    response = httpx.post(f"{stack.base_url}/v1/chat/completions",
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    sent = response.content
    assert sent.endswith(b"data: [DONE]\n\n") and DEFAULT_API_KEY.encode() not in sent
    assert b'"model":"up"' not in sent  # the caller's id, not the upstream's

    blob = stored_blob(stack, cid)
    assert blob.startswith(MAGIC) and len(blob) < len(sent) / 2
    assert expand(blob) == sent[: -len(b"data: [DONE]\n\n")]
    assert DEFAULT_API_KEY.encode() not in blob

    stored = httpx.get(f"{stack.base_url}/v1/chat/completions/{cid}").json()
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in sent.decode().splitlines() if line.startswith("data: {"))
    assert stored["choices"][0]["message"]["content"] == text
    assert "[REDACTED]" in text and stored["model"] == CHAT_MODEL


def test_a_stream_with_a_tool_call_among_its_text_is_stored_as_sent(stack: Stack) -> None:
    cid = "chat-packed-tool"
    call = {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": "f", "arguments": "{}"}}]}
    raw = upstream_stream(cid, [f"a{i}" for i in range(10)])
    middle = raw.index(b"data: ", 400)
    stack.fake.stream_raw_next(raw[:middle] + event(cid, delta=call) + raw[middle:])
    sent = httpx.post(f"{stack.base_url}/v1/chat/completions",
                      json={"model": CHAT_MODEL, "messages": HELLO, "stream": True}).content
    blob = stored_blob(stack, cid)
    events = expand(blob) if blob.startswith(MAGIC) else blob
    assert events == sent[: -len(b"data: [DONE]\n\n")]
    stored = httpx.get(f"{stack.base_url}/v1/chat/completions/{cid}").json()
    assert stored["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"


def test_rows_in_the_older_form_still_read(stack: Stack, tmp_path: Path) -> None:
    cid = "chat-short-stream"  # too short to pack: stored as sent, the form older rows have
    stack.fake.stream_raw_next(upstream_stream(cid, ["one", "two"]))
    httpx.post(f"{stack.base_url}/v1/chat/completions", json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    assert stored_blob(stack, cid).startswith(b"data: ")
    stored = httpx.get(f"{stack.base_url}/v1/chat/completions/{cid}").json()
    assert stored["choices"][0]["message"]["content"] == "onetwo"
