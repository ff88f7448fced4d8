"""Turn the SSE events of a finished chat stream into the ``chat.completion`` it amounts to.

A streamed completion is stored as its events and assembled here when it is read: parsing
500 events costs ~1 ms of CPU, three times what relaying them costs, and the completion is
read far less often than it is written. The events are read by ``relaystack.sse`` and
decoded in one ``orjson.loads`` call (a JSON array built from the payloads), a fraction of
decoding them one by one. Events were checked when relayed (``chunk_shape``); a row that
still cannot be assembled raises, and the store's read path marks it instead of failing.
Pure functions, importable from any layer.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from relaystack import sse, stored_stream

__all__ = ["assemble_chat_stream", "first_event", "is_stream_blob"]

STREAM_PREFIX = b"data:"


def is_stream_blob(blob: bytes) -> bool:
    """True for stored SSE events, as sent or packed (a JSON completion starts with ``{``)."""
    return blob.startswith(STREAM_PREFIX) or stored_stream.is_packed(blob)


def first_event(events: bytes) -> dict[str, Any] | None:
    """The first event, parsed (its id and created are the completion's); ``events`` as sent or packed."""
    if stored_stream.is_packed(events):
        payload = stored_stream.first_payload_of_packed(events)
    else:
        payload = sse.first_payload(events)
    if payload is None:
        return None
    parsed = orjson.loads(payload)
    return parsed if isinstance(parsed, dict) else None


def assemble_chat_stream(events: bytes, model: str) -> dict[str, Any] | None:
    """The ``chat.completion`` stored events amount to; None without events. Raises on events
    that are not chunks (the caller decides what a bad row becomes). ``events``: as sent, or packed
    (``relaystack.stored_stream``)."""
    if stored_stream.is_packed(events):
        events = stored_stream.expand(events)
    payloads = [p for p in sse.payloads(events) if not sse.is_done(p)]
    if not payloads:
        return None
    chunks = orjson.loads(b"[" + b",".join(payloads) + b"]")
    if len(chunks) != len(payloads) or not all(isinstance(c, dict) for c in chunks):
        raise ValueError("stored stream events are not one chunk object each")
    first = chunks[0]
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            _merge_choice(choices.setdefault(choice.get("index", 0), _new_choice(choice.get("index", 0))), choice)
    completion: dict[str, Any] = {
        "id": first.get("id") or "",
        "object": "chat.completion",
        "created": first.get("created") or int(time.time()),
        "model": model,
        "choices": [_finish_choice(choices[i]) for i in sorted(choices)],
    }
    if usage is not None:
        completion["usage"] = usage
    if first.get("system_fingerprint"):
        completion["system_fingerprint"] = first["system_fingerprint"]
    return completion


def _new_choice(index: int) -> dict[str, Any]:
    return {"index": index, "content": [], "refusal": [], "tools": {}, "finish_reason": None, "logprobs": []}


def _merge_choice(acc: dict[str, Any], choice: dict[str, Any]) -> None:
    delta = choice.get("delta") or {}
    if delta.get("content"):
        acc["content"].append(delta["content"])
    if delta.get("refusal"):
        acc["refusal"].append(delta["refusal"])
    for call in delta.get("tool_calls") or ():
        slot = acc["tools"].setdefault(call.get("index", 0), {"id": None, "type": "function", "name": [], "args": []})
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        function = call.get("function") or {}
        if function.get("name"):
            slot["name"].append(function["name"])
        if function.get("arguments"):
            slot["args"].append(function["arguments"])
    if choice.get("finish_reason"):
        acc["finish_reason"] = choice["finish_reason"]
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict) and logprobs.get("content"):
        acc["logprobs"].extend(logprobs["content"])


def _finish_choice(acc: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(acc["content"]) if acc["content"] else None}
    if acc["refusal"]:
        message["refusal"] = "".join(acc["refusal"])
    calls = [
        {"id": slot["id"], "type": slot["type"],
         "function": {"name": "".join(slot["name"]), "arguments": "".join(slot["args"])}}
        for _, slot in sorted(acc["tools"].items())
        if slot["id"]
    ]
    if calls:
        message["tool_calls"] = calls
    return {
        "index": acc["index"],
        "message": message,
        "finish_reason": acc["finish_reason"],
        "logprobs": {"content": acc["logprobs"]} if acc["logprobs"] else None,
    }
