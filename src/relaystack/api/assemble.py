"""Turn the SSE blocks of a finished chat stream into the ``chat.completion`` it amounts to.

Used to store a streamed completion. All events are decoded in one ``orjson.loads`` call
(a JSON array built from the payloads), which costs a fraction of decoding them one by one.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

__all__ = ["assemble_chat_stream"]


def _payloads(blocks: list[bytes]) -> list[bytes]:
    out = []
    for event in b"".join(blocks).split(b"\n\n"):
        if event.startswith(b"data: ") and not event.startswith(b"data: [DONE]"):
            out.append(event[6:])
    return out


def assemble_chat_stream(blocks: list[bytes], model: str) -> dict[str, Any] | None:
    payloads = _payloads(blocks)
    if not payloads:
        return None
    chunks = orjson.loads(b"[" + b",".join(payloads) + b"]")
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
