"""The fixed OpenAI bodies the fake upstream serves, and the request bodies clients send.

One directory tree maps request paths to files (``<root>/sse500/v1/chat/completions`` is the
body for that path), so nginx serves it with a plain ``root`` and the Python fallback with a
dictionary lookup. The model id inside each body is the id the client sends, so a pass-through
and a routing gateway (which rewrites ``model`` to the caller's id) return the same thing.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

CREATED = 1_700_000_000
CHAT_TEXT = "Hello from the bench upstream. This is a fixed answer of a few tokens."
# OpenAI text-embedding-3-small's size; the batch scenario embeds EMBED_BATCH inputs in one request
EMBED_DIM = 1536
EMBED_BATCH = 32
MODEL_IDS = ("bench-chat", "bench-chat1k", "bench-chat4k", "bench-embed", "bench-embed32", "bench-sse50",
             "bench-sse500", "bench-ttfb")
# the upstream path prefix each streaming model's provider points at
STREAM_PREFIXES = {"bench-sse50": ("sse50", 50), "bench-sse500": ("sse500", 500)}
# models whose JSON answer lives under a path prefix of its own (a provider per prefix, as for streams)
JSON_PREFIXES = {"bench-chat1k": "chat1k", "bench-chat4k": "chat4k", "bench-embed32": "embed32"}
# scenario -> a model with two deployments on the chat body (bench/configs): both up / the first down
ROUTED_MODELS = {"chat2": "bench-chat-2d", "chat2down": "bench-chat-down"}
USAGE = {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28}


def _dumps(obj: Any, *, ascii_only: bool = True) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only)


def chat_body(model: str = "bench-chat") -> bytes:
    return _dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": CHAT_TEXT},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": USAGE,
    }).encode()


_PARAGRAPH = ("Sure! Here is a short answer, with a list and a bit of code, as a real model writes it.\n\n"
              "1. **Read the body** once: the gateway parses the request to route it.\n"
              "2. Relay the answer \u2014 ideally as bytes, with the caller's \"model\" id swapped in.\n\n"
              "```python\nprint(\"caf\u00e9\", 42)\n```\n\n")


def long_text(size: int) -> str:
    """An assistant message of about ``size`` characters: markdown, newlines, quotes, non-ASCII."""
    text = ""
    while len(text) + len(_PARAGRAPH) <= size:
        text += _PARAGRAPH
    return text + "Done." * ((size - len(text)) // 5)


# the chat1k / chat4k answers' text: whole answers of about 1 KB and 4 KB, OpenAI's fields included
LONG_TEXTS = {"bench-chat1k": long_text(420), "bench-chat4k": long_text(3330)}


def long_chat_body(model: str) -> bytes:
    """A chat completion as OpenAI sends it today (system_fingerprint, refusal, annotations, token details)."""
    text = LONG_TEXTS[model]
    return _dumps({
        "id": "chatcmpl-Bench0123456789abcdefghijklmnop", "object": "chat.completion", "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                             "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 24, "completion_tokens": len(text) // 4, "total_tokens": 24 + len(text) // 4,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_bench01",
    }, ascii_only=False).encode()


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


def embedding_vector(index: int) -> list[float]:
    """A fixed vector that looks like text-embedding-3-small's: 1,536 floats of ~N(0, 1/sqrt(1536)),
    printed with up to 9 significant digits (``-0.012386742``: ~13 bytes each)."""
    rng = random.Random(index)
    return [float(f"{rng.gauss(0.0, 0.0255):.9g}") for _ in range(EMBED_DIM)]


def embed_body(model: str = "bench-embed", items: int = 1) -> bytes:
    return _dumps({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": embedding_vector(i)} for i in range(items)],
        "model": model,
        "usage": {"prompt_tokens": 3 * items, "total_tokens": 3 * items},
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
        "chat1k/v1/chat/completions": long_chat_body("bench-chat1k"),
        "chat4k/v1/chat/completions": long_chat_body("bench-chat4k"),
        "embed32/v1/embeddings": embed_body("bench-embed32", EMBED_BATCH),
    }
    for model, (prefix, chunks) in STREAM_PREFIXES.items():
        files[f"{prefix}/v1/chat/completions"] = sse_body(model, chunks)
    for prefix in [p for p, _ in STREAM_PREFIXES.values()] + list(JSON_PREFIXES.values()):
        files[f"{prefix}/v1/models"] = models_body()
    files["ttfb/v1/models"] = models_body()
    return files


# A real upstream never gives two answers one completion id; a store keyed by it then inserts a row
# per answer. The bench's chat and stream bodies are fixed files, so each upstream splices a new id
# into the first ``"id":"chatcmpl-...`` of every answer (nginx: the addition module's subrequest,
# ``nginx_id_locations``; the Python fake: ``with_new_id``). Only the first event of a stream gets it:
# that is the id a gateway stores a stream under, and nginx's sub_filter over all 500 events would
# make nginx itself the bottleneck (~300 streams/s instead of ~9,000).
ID_PREFIX = b'"id":"chatcmpl-'
UNIQUE_ID_PATHS = ("v1/chat/completions", "chat1k/v1/chat/completions", "chat4k/v1/chat/completions",
                   *(f"{prefix}/v1/chat/completions" for prefix, _ in STREAM_PREFIXES.values()))


def id_parts(body: bytes) -> tuple[bytes, bytes]:
    """(head, rest) of a body around its first completion id's unique part."""
    start = body.index(ID_PREFIX) + len(ID_PREFIX)
    return body[:start], body[body.index(b'"', start):]


def with_new_id(body: bytes, serial: int) -> bytes:
    head, rest = id_parts(body)
    return head + b"%032x" % serial + rest


def write_tree(root: Path, *, split_ids: bool = False) -> Path:
    """The bodies as files; with ``split_ids`` (nginx), a body with a completion id is written
    without its head, which ``nginx_id_locations`` serves with a new id in front of it."""
    for rel, body in upstream_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(id_parts(body)[1] if split_ids and rel in UNIQUE_ID_PATHS else body)
    return root


def nginx_id_locations() -> str:
    """nginx locations that put each answer's head, with a new completion id, before its file."""
    files = upstream_files()
    blocks = []
    for rel in UNIQUE_ID_PATHS:
        head = id_parts(files[rel])[0].decode()
        assert "'" not in head and "\\" not in head and "$" not in head
        kind = "default_type text/event-stream;\n            add_header Cache-Control no-cache;\n            " \
            if rel.startswith("sse") else ""
        blocks.append(
            f"        location = /{rel} {{\n            {kind}error_page 405 =200 $uri;\n"
            f"            add_before_body /new-id/{rel};\n        }}\n"
            f"        location = /new-id/{rel} {{\n            internal;\n"
            f"            return 200 '{head}$request_id';\n        }}\n")
    return "".join(blocks)


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
    if scenario in ("chat1k", "chat4k"):
        long = [{"role": "system", "content": "You are a helpful assistant. Answer in markdown."}, *messages]
        return _dumps({"model": model or f"bench-{scenario}", "messages": long, "max_tokens": 1024,
                       "temperature": 0.2}).encode()
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
    if scenario == "embed32":
        inputs = [f"bench input number {i}: a sentence of a document to index." for i in range(EMBED_BATCH)]
        return _dumps({"model": model or "bench-embed32", "input": inputs}).encode()
    if scenario == "models":
        return None
    raise ValueError(f"unknown scenario {scenario!r}")
