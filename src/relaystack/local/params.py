"""Validate OpenAI request bodies for the embedded models.

A remote provider can forward a field it does not understand; a local model cannot, so
anything that would change the answer and that we do not implement (tools, logprobs,
n > 1, JSON mode ...) is rejected with a 400 that says so, instead of being ignored.
Harmless bookkeeping fields (user, metadata, store, service_tier ...) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relaystack.errors import InvalidRequestError, UnsupportedParameterError
from relaystack.local.llamacpp import SamplingParams

__all__ = [
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "parse_chat",
    "parse_completion",
    "parse_embeddings",
]

MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own limit per request
MAX_STOP = 4
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: list[dict[str, str]]
    params: SamplingParams
    stream: bool
    include_usage: bool


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    prompt: str
    params: SamplingParams
    stream: bool
    include_usage: bool


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    texts: list[str]
    encoding_format: str  # "float" | "base64"


def _number(body: dict[str, Any], key: str, lo: float, hi: float, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise InvalidRequestError(f"'{key}' must be a number between {lo:g} and {hi:g}.", param=key)
    return float(value)


def _int(body: dict[str, Any], key: str, lo: int, default: int | None) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise InvalidRequestError(f"'{key}' must be an integer >= {lo}.", param=key)
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequestError(f"'{key}' must be true or false.", param=key)
    return value


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequestError("'stream_options' must be an object.", param="stream_options")
    return _flag(options, "include_usage")


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > MAX_STOP:
        raise InvalidRequestError(f"'stop' must be a string or a list of up to {MAX_STOP} strings.", param="stop")
    return tuple(s for s in stop if s)


def _reject(body: dict[str, Any], key: str, why: str) -> None:
    if body.get(key) not in (None, False, [], {}):
        raise UnsupportedParameterError(f"'{key}' is not supported by the local model: {why}", param=key)


def _single_choice(body: dict[str, Any], key: str = "n") -> None:
    if _int(body, key, 1, 1) != 1:
        raise InvalidRequestError(
            f"The local model returns one choice per request: '{key}' must be 1 (send several requests).",
            param=key,
        )


def _sampling(body: dict[str, Any], *, default_max_tokens: int | None) -> SamplingParams:
    max_tokens = _int(body, "max_completion_tokens", 1, None)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1, default_max_tokens)
    seed = _int(body, "seed", -(2**63), None)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0.0, 2.0, 1.0),
        top_p=_number(body, "top_p", 0.0, 1.0, 1.0),
        top_k=_int(body, "top_k", 0, 40) or 0,
        min_p=_number(body, "min_p", 0.0, 1.0, 0.05),
        presence_penalty=_number(body, "presence_penalty", -2.0, 2.0, 0.0),
        frequency_penalty=_number(body, "frequency_penalty", -2.0, 2.0, 0.0),
        seed=seed,
        stop=_stop(body),
    )


def _message_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise UnsupportedParameterError(
                    f"messages[{index}].content: only text parts are supported by the local model, got {kind!r}.",
                    param=f"messages[{index}].content",
                )
            parts.append(part["text"])
        return "".join(parts)
    raise InvalidRequestError(
        f"messages[{index}].content must be a string or a list of text parts.", param=f"messages[{index}].content"
    )


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty list of messages.", param="messages")
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}] must be an object.", param=f"messages[{i}]")
        role = _ROLES.get(str(message.get("role")))
        if role is None:
            raise UnsupportedParameterError(
                f"messages[{i}].role {message.get('role')!r} is not supported by the local model "
                "(use system, developer, user or assistant).",
                param=f"messages[{i}].role",
            )
        _reject(message, "tool_calls", "it has no tool calling.")
        out.append({"role": role, "content": _message_text(message.get("content"), i)})
    return out


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    _single_choice(body)
    for key in ("tools", "functions"):
        _reject(body, key, "it has no tool calling.")
    if body.get("tool_choice") not in (None, "none", "auto"):
        raise UnsupportedParameterError("'tool_choice' is not supported by the local model.", param="tool_choice")
    _reject(body, "logprobs", "run it with logits kept (not implemented).")
    _reject(body, "top_logprobs", "logprobs are not implemented.")
    _reject(body, "logit_bias", "not implemented.")
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        raise UnsupportedParameterError(
            "'response_format' other than {'type': 'text'} is not supported by the local model.",
            param="response_format",
        )
    return ChatRequest(
        messages=_messages(body),
        params=_sampling(body, default_max_tokens=None),
        stream=_flag(body, "stream"),
        include_usage=_include_usage(body),
    )


def parse_completion(body: dict[str, Any]) -> CompletionRequest:
    _single_choice(body)
    _single_choice(body, "best_of")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequestError(
            "'prompt' must be a string (or a list holding one string) for the local model.", param="prompt"
        )
    _reject(body, "echo", "not implemented.")
    _reject(body, "suffix", "this model has no fill-in-the-middle mode.")
    _reject(body, "logprobs", "not implemented.")
    _reject(body, "logit_bias", "not implemented.")
    return CompletionRequest(
        prompt=prompt,
        params=_sampling(body, default_max_tokens=16),  # OpenAI's default for /v1/completions
        stream=_flag(body, "stream"),
        include_usage=_include_usage(body),
    )


def parse_embeddings(body: dict[str, Any], *, dimension: int) -> EmbeddingRequest:
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise InvalidRequestError("'input' must be a string or a non-empty list of strings.", param="input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequestError(
            f"'input' has {len(texts)} items; at most {MAX_EMBEDDING_INPUTS} per request.", param="input"
        )
    for i, item in enumerate(texts):
        if not isinstance(item, str):
            raise InvalidRequestError(
                f"input[{i}] is a {type(item).__name__}: the local embedding model takes strings only "
                "(token-id arrays are not supported).",
                param="input",
            )
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise InvalidRequestError("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and dims != dimension:
        raise UnsupportedParameterError(
            f"This model always returns {dimension} dimensions; omit 'dimensions' or set it to {dimension}.",
            param="dimensions",
        )
    return EmbeddingRequest(texts=list(texts), encoding_format=fmt)
