"""Human views of a recording: a stream put back together, and what a test would mention.

Used by ``relaystack recordings show`` (content, tool calls, finish_reason, usage rather
than 50 chunk objects) and by ``verify`` (the prompt text a test file would contain).
"""

from __future__ import annotations

from typing import Any

from relaystack.recording.codec import Recording

__all__ = ["fingerprint", "reassemble", "summarize"]

_FINGERPRINT_LEN = 40


def reassemble(chunks: list[Any]) -> dict[str, Any]:
    """Fold stream chunks (chat or text completion) into one answer per choice."""
    choices: dict[int, dict[str, Any]] = {}
    usage: Any = None
    ids: list[str] = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("id") and chunk["id"] not in ids:
            ids.append(chunk["id"])
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            _fold_choice(choices.setdefault(int(choice.get("index", 0)), _empty_choice()), choice)
    return {
        "ids": ids,
        "chunks": len(chunks),
        "choices": [_finish_choice(choices[i]) for i in sorted(choices)],
        "usage": usage,
    }


def _empty_choice() -> dict[str, Any]:
    return {"content": "", "tool_calls": {}, "finish_reason": None, "role": None}


def _fold_choice(acc: dict[str, Any], choice: dict[str, Any]) -> None:
    delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else None
    # chat chunks carry delta.content, text completions `text`; Together sends both (the same
    # text twice), so take one of them, never the sum
    if delta is not None and "content" in delta:
        acc["content"] += delta.get("content") or ""
    else:
        acc["content"] += choice.get("text") or ""
    if delta is not None:
        acc["role"] = acc["role"] or delta.get("role")
        for call in delta.get("tool_calls") or []:
            _fold_tool_call(acc["tool_calls"], call)
    if choice.get("finish_reason"):
        acc["finish_reason"] = choice["finish_reason"]


def _fold_tool_call(calls: dict[int, dict[str, Any]], call: dict[str, Any]) -> None:
    slot = calls.setdefault(int(call.get("index", 0)), {"id": None, "type": None, "name": None, "arguments": ""})
    slot["id"] = slot["id"] or call.get("id")
    slot["type"] = slot["type"] or call.get("type")
    function = call.get("function") or {}
    slot["name"] = slot["name"] or function.get("name")
    slot["arguments"] += function.get("arguments") or ""


def _finish_choice(acc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in acc.items() if k != "tool_calls"}
    if acc["tool_calls"]:
        out["tool_calls"] = [acc["tool_calls"][i] for i in sorted(acc["tool_calls"])]
    return out


def summarize(rec: Recording) -> dict[str, Any]:
    """What ``show`` prints for the response side."""
    if rec.is_exception:
        error: dict[str, Any] = {"status": rec.error_status, "message": rec.error_message()}
        if rec.error_status is not None:
            error["body"] = rec.error_body()
        if rec.is_streaming and isinstance(rec.body, list):
            error["after_stream"] = reassemble(rec.items())
        return {"error": error}
    if rec.is_binary:
        content_type, raw = rec.binary()
        return {"binary": {"content_type": content_type, "bytes": len(raw)}}
    if rec.replays_as_stream:
        return {"stream": reassemble(rec.items())}
    if rec.is_model_list:
        return {"models": [m.get("id") if isinstance(m, dict) else m for m in rec.items()]}
    wire = rec.wire_json()
    if rec.operation == "/embeddings" and isinstance(wire, dict):
        data = wire.get("data") or []
        dims = len(data[0].get("embedding") or []) if data and isinstance(data[0], dict) else 0
        return {"embeddings": {"count": len(data), "dimensions": dims, "usage": wire.get("usage")}}
    return {"body": wire}


def fingerprint(rec: Recording) -> str | None:
    """The text a test that uses this recording would contain (the prompt, the input), or None."""
    body = rec.identity.body
    text: Any = None
    messages = body.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text = _text_of((users or messages)[-1].get("content")) if (users or messages) else None
    elif body.get("prompt") is not None:
        text = _text_of(body["prompt"])
    elif body.get("input") is not None:
        text = _text_of(body["input"])
    if not isinstance(text, str) or not text.strip():
        return None
    line = next(part for part in text.splitlines() if part.strip()).strip()
    return line[:_FINGERPRINT_LEN]


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for part in content:
            found = _text_of(part.get("text") if isinstance(part, dict) else part)
            if found:
                return found
    return None
