"""What the fake Together says: its model catalog and the deterministic bodies it answers with.

Pure functions, no I/O, so the shapes can be read (and tested) apart from the HTTP plumbing.
Every shape follows the real recordings in ``tests/recordings/together/responses/`` (llama-stack's
15 recordings of api.together.xyz, Sept 2025), quirks included:

- chat completions carry ``prompt: []``, ``choices[].seed`` and ``usage.cached_tokens``;
- stream chunks carry ``delta.token_id``, ``choices[].text`` and ``choices[].seed`` (null until the
  finish chunk), and ``usage`` rides on the finish chunk whether or not it was asked for;
- text completions use ``object: "text.completion"`` / ``"completion.chunk"`` (not OpenAI's names);
- embeddings from ``m2-bert`` come back with ``usage: null``.

Content is an echo so that tests can predict it: a chat answer is ``"You said: <last user text>"``,
a text completion is ``" You wrote: <prompt>"``; tokens are the whitespace-led words of that text.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import secrets
import string
import zlib
from typing import Any

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "EMBEDDING_MODELS_WITHOUT_USAGE",
    "MODELS",
    "chat_reply_text",
    "completion_reply_text",
    "content_text",
    "embedding_vector",
    "last_user_text",
    "new_completion_id",
    "prompt_token_count",
    "seed_for",
    "split_tokens",
    "token_id",
    "tool_call_arguments",
    "tool_call_id",
    "usage",
]

_CREATED = 1733443200  # a fixed "created" for catalog entries


def _model(model_id: str, type_: str, organization: str, context_length: int, **pricing: float) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": _CREATED,
        "type": type_,
        "running": False,
        "display_name": model_id.split("/")[-1].replace("-", " "),
        "organization": organization,
        "link": f"https://huggingface.co/{model_id}",
        "license": "see model card",
        "context_length": context_length,
        "config": {"chat_template": None, "stop": [], "bos_token": None, "eos_token": None},
        "pricing": {"hourly": 0, "input": 0, "output": 0, "base": 0, "finetune": 0, **pricing},
    }


# Together's GET /v1/models answers a bare JSON array of these (quirk Q1).
MODELS: list[dict[str, Any]] = [
    _model("meta-llama/Llama-3.3-70B-Instruct-Turbo-Free", "chat", "Meta", 131072),
    _model("meta-llama/Llama-3.3-70B-Instruct-Turbo", "chat", "Meta", 131072, input=0.88, output=0.88),
    _model("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", "chat", "Meta", 131072, input=0.18, output=0.18),
    _model("meta-llama/Llama-2-70b-hf", "language", "Meta", 4096, input=0.9, output=0.9),
    _model("codellama/CodeLlama-34b-Instruct-hf", "code", "Meta", 16384, input=0.78, output=0.78),
    _model("togethercomputer/m2-bert-80M-32k-retrieval", "embedding", "Together", 32768, input=0.008),
    _model("BAAI/bge-large-en-v1.5", "embedding", "BAAI", 512, input=0.016),
    # a real Together embedding model that relaystack's dimension table does not know
    _model("WhereIsAI/UAE-Large-V1", "embedding", "WhereIsAI", 512, input=0.016),
    _model("black-forest-labs/FLUX.1-schnell-Free", "image", "Black Forest Labs", 0),
    _model("Salesforce/Llama-Rank-V1", "rerank", "Salesforce", 8192, input=0.1),
    _model("meta-llama/Llama-Guard-3-8B", "moderation", "Meta", 8192, input=0.2, output=0.2),
    _model("cartesia/sonic", "audio", "Cartesia", 0),
]

EMBEDDING_DIMENSIONS: dict[str, int] = {
    "togethercomputer/m2-bert-80M-32k-retrieval": 768,
    "BAAI/bge-large-en-v1.5": 1024,
    "WhereIsAI/UAE-Large-V1": 1024,
}
# m2-bert answers "usage": null (quirk Q2); the others count tokens
EMBEDDING_MODELS_WITHOUT_USAGE = frozenset({"togethercomputer/m2-bert-80M-32k-retrieval"})

_TOKEN = re.compile(r"\s*\S+")
_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits


def new_completion_id() -> str:
    """Together ids look like ``oBUtgGr-4Yz4kd-9801a2f00b2b42e8`` and are unique per call (Q9)."""
    head = "".join(secrets.choice(_ALNUM) for _ in range(4))
    mid = "".join(secrets.choice(_ALNUM) for _ in range(6))
    return f"oBU{head}-{mid}-{secrets.token_hex(8)}"


def split_tokens(text: str) -> list[str]:
    """Whitespace-led words; ``"".join(split_tokens(t)) == t`` for text without trailing spaces."""
    tokens = _TOKEN.findall(text)
    return tokens or ([text] if text else [])


def token_id(token: str) -> int:
    return zlib.crc32(token.encode()) % 128000


def seed_for(completion_id: str, index: int = 0) -> int:
    """A large per-choice seed, like Together's ``choices[].seed``."""
    digest = hashlib.sha256(f"{completion_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def chat_reply_text(messages: list[dict[str, Any]]) -> str:
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") == "tool":  # a tool result came back: the model answers from it
        return f"The tool said: {content_text(last.get('content'))}"
    return f"You said: {last_user_text(messages)}"


def completion_reply_text(prompt: str) -> str:
    return f" You wrote: {prompt}"


def prompt_token_count(messages: list[dict[str, Any]]) -> int:
    # a chat template costs tokens too: Together counted 39 for "Hello, world!"
    words = sum(len(split_tokens(content_text(m.get("content")))) for m in messages if isinstance(m, dict))
    return words + 10 * len(messages)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "completion_tokens": completion_tokens,
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens_details": None,
        "prompt_tokens_details": None,
        "cached_tokens": 0,
    }


def tool_call_id(completion_id: str, index: int = 0) -> str:
    """``call_`` + 24 lowercase letters and digits, like Together's ``call_8prwkicthj6bjfqa9ye64y2b``."""
    digest = hashlib.sha256(f"call:{completion_id}:{index}".encode()).digest()
    return "call_" + "".join(_LOWER_ALNUM[b % len(_LOWER_ALNUM)] for b in digest[:24])


def tool_call_arguments(tool: dict[str, Any], user_text: str) -> str:
    """Arguments for a call of ``tool``: every string property gets the user's text (an echo again)."""
    parameters = (tool.get("function") or {}).get("parameters") or {}
    args: dict[str, Any] = {}
    for name, spec in (parameters.get("properties") or {}).items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        args[name] = {"string": user_text, "integer": 1, "number": 1.5, "boolean": True}.get(str(kind))
    return json.dumps(args, separators=(",", ":"))


def embedding_vector(model: str, text: str, dimensions: int) -> list[float]:
    """A unit vector seeded by (model, text): same input, same vector; different input, different vector."""
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    # 8 significant digits, as Together prints its float32 values
    return [float(f"{x / norm:.8g}") for x in raw]
