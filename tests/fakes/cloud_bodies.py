"""The OpenAI-shaped bodies the fake clouds answer with: deterministic, per personality."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["chat_chunks", "chat_response", "completion_response", "embedding_vector", "sse", "words"]

CREATED = 1733443200
USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def words(name: str) -> list[str]:
    return ["Hello", " from", f" {name}!"]


def chat_response(name: str, model: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{name}-1", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(words(name))},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": dict(USAGE), **extra,
    }


def completion_response(name: str, model: str) -> dict[str, Any]:
    return {
        "id": f"cmpl-{name}-1", "object": "text_completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "text": "".join(words(name)), "finish_reason": "stop", "logprobs": None}],
        "usage": dict(USAGE),
    }


def chat_chunks(name: str, model: str, *, usage_every_chunk: bool = False, include_usage: bool = False,
                delta_extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Role chunk, one chunk per word, the finishing chunk; OpenAI's usage chunk when asked."""
    base = {"id": f"chatcmpl-{name}-1", "object": "chat.completion.chunk", "created": CREATED, "model": model}
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": w} for w in words(name)]
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    if delta_extra:
        chunks[1]["choices"][0]["delta"].update(delta_extra)
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage_every_chunk:
        for chunk in chunks:
            chunk["usage"] = dict(USAGE)
    elif include_usage:
        chunks.append({**base, "choices": [], "usage": dict(USAGE)})
    return chunks


def embedding_vector(text: str, dimension: int) -> list[float]:
    seed = sum(ord(c) for c in text) or 1
    return [round(math.sin(seed * (i + 1)), 6) for i in range(dimension)]


def sse(events: list[dict[str, Any]], *, done: bool = True, framing: str = "") -> bytes:
    """``framing`` is prepended to every event (watsonx sends ``id:``/``event:`` lines)."""
    out = b"".join(
        (framing.format(i=i + 1)).encode() + b"data: " + json.dumps(e).encode() + b"\n\n" for i, e in enumerate(events)
    )
    return out + (b"data: [DONE]\n\n" if done else b"")
