"""The fixed OpenAI bodies the fake upstream serves, and the request bodies clients send.

One directory tree maps request paths to files (``<root>/sse500/v1/chat/completions`` is the
body for that path), so nginx serves it with a plain ``root`` and the Python fallback with a
dictionary lookup. The model id inside each body is the id the client sends, so a pass-through
and a routing gateway (which rewrites ``model`` to the caller's id) return the same thing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CREATED = 1_700_000_000
CHAT_TEXT = "Hello from the bench upstream. This is a fixed answer of a few tokens."
EMBED_DIM = 8
MODEL_IDS = ("bench-chat", "bench-embed", "bench-sse50", "bench-sse500", "bench-ttfb")
# the upstream path prefix each streaming model's provider points at
STREAM_PREFIXES = {"bench-sse50": ("sse50", 50), "bench-sse500": ("sse500", 500)}
# scenario -> a model with two deployments on the chat body (bench/configs): both up / the first down
ROUTED_MODELS = {"chat2": "bench-chat-2d", "chat2down": "bench-chat-down"}
USAGE = {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def chat_body(model: str = "bench-chat") -> bytes:
    return _dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": CHAT_TEXT},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": USAGE,
    }).encode()


def stream_token(i: int) -> str:
    return f"tok{i} "


def stream_text(chunks: int) -> str:
    """The text a client must reassemble from a stream of ``chunks`` events (the last has none)."""
    return "".join(stream_token(i) for i in range(chunks - 1))


def sse_event(model: str, i: int, chunks: int) -> bytes:
    last = i == chunks - 1
    delta: dict[str, Any] = {"role": "assistant"} if i == 0 else {}
    if not last:
        delta["content"] = stream_token(i)
    event: dict[str, Any] = {
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None,
                     "logprobs": None}],
    }
    if last:
        event["usage"] = {**USAGE, "completion_tokens": chunks - 1, "total_tokens": 12 + chunks - 1}
    return b"data: " + _dumps(event).encode() + b"\n\n"


def sse_body(model: str, chunks: int) -> bytes:
    return b"".join(sse_event(model, i, chunks) for i in range(chunks)) + b"data: [DONE]\n\n"


def completion_body() -> bytes:
    return _dumps({
        "id": "cmpl-bench", "object": "text_completion", "created": CREATED, "model": "bench-chat",
        "choices": [{"index": 0, "text": " world, from the bench upstream.", "finish_reason": "stop",
                     "logprobs": None}],
        "usage": USAGE,
    }).encode()


def embed_body() -> bytes:
    vector = [round(0.125 * (i + 1), 3) for i in range(EMBED_DIM)]
    return _dumps({
        "object": "list", "model": "bench-embed",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }).encode()


def models_body() -> bytes:
    return _dumps({
        "object": "list",
        "data": [{"id": m, "object": "model", "created": CREATED, "owned_by": "bench"} for m in MODEL_IDS],
    }).encode()


def upstream_files() -> dict[str, bytes]:
    """Request path -> response body, for every path the fake upstream answers."""
    files = {
        "v1/chat/completions": chat_body(),
        "v1/completions": completion_body(),
        "v1/embeddings": embed_body(),
        "v1/models": models_body(),
    }
    for model, (prefix, chunks) in STREAM_PREFIXES.items():
        files[f"{prefix}/v1/chat/completions"] = sse_body(model, chunks)
        files[f"{prefix}/v1/models"] = models_body()
    files["ttfb/v1/models"] = models_body()
    return files


def write_tree(root: Path) -> Path:
    for rel, body in upstream_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


# the model each front-end scenario names (its upstream answer is chat's or sse500's)
MODELS_BY_SCENARIO = {"responses": "bench-chat", "responses500": "bench-sse500", "messages": "bench-chat",
                      "messages500": "bench-sse500"}


def request_body(scenario: str, model: str | None = None) -> bytes | None:
    """What the client POSTs for a scenario (None for GET); ``model`` overrides the model id
    for a peer that names models its own way (llama-stack: ``provider_id/model``)."""
    messages = [{"role": "user", "content": "Say hello to the benchmark."}]
    if scenario == "chat" or scenario in ROUTED_MODELS:
        model = model or ROUTED_MODELS.get(scenario, "bench-chat")
        return _dumps({"model": model, "messages": messages, "max_tokens": 32}).encode()
    if scenario in ("sse50", "sse500", "ttfb"):
        model = model or f"bench-{scenario}"
        return _dumps({"model": model, "messages": messages, "stream": True}).encode()
    if scenario == "completions":
        return _dumps({"model": model or "bench-chat", "prompt": "Hello", "max_tokens": 16}).encode()
    if scenario in ("responses", "responses500"):
        stream = scenario == "responses500"
        return _dumps({"model": model or MODELS_BY_SCENARIO[scenario], "input": "Say hello to the benchmark.",
                       "max_output_tokens": 32, "stream": stream}).encode()
    if scenario in ("messages", "messages500"):
        stream = scenario == "messages500"
        return _dumps({"model": model or MODELS_BY_SCENARIO[scenario], "messages": messages, "max_tokens": 32,
                       "stream": stream}).encode()
    if scenario == "embed":
        return _dumps({"model": model or "bench-embed", "input": "bench input"}).encode()
    if scenario == "models":
        return None
    raise ValueError(f"unknown scenario {scenario!r}")
