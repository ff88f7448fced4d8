"""Request validation and response bodies of the fake Together, one function per endpoint.

Each ``*_events`` / ``*_response`` function takes the parsed request body and returns what
Together would send: a JSON object, or the list of SSE chunk objects of a stream (the
``data: [DONE]`` sentinel is added by the server). Invalid requests raise ``TogetherError``,
rendered with Together's error envelope ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .together_data import (
    EMBEDDING_DIMENSIONS,
    EMBEDDING_MODELS_WITHOUT_USAGE,
    MODELS,
    chat_reply_text,
    completion_reply_text,
    embedding_vector,
    last_user_text,
    new_completion_id,
    prompt_token_count,
    seed_for,
    split_tokens,
    token_id,
    tool_call_arguments,
    tool_call_id,
    usage,
)

__all__ = [
    "N_WITH_STREAM_MESSAGE",
    "TogetherError",
    "chat_events",
    "chat_response",
    "completion_events",
    "completion_response",
    "embeddings_response",
]

N_WITH_STREAM_MESSAGE = "`n` > 1 is not supported when streaming tokens. Please disable `stream`"
_EOT_TOKEN = 128009  # Llama 3 <|eot_id|>, sent on the finish chunk of a text answer
_EOM_TOKEN = 128008  # Llama 3 <|eom_id|>, sent on the finish chunk of a tool call
_CHAT_TYPES = frozenset({"chat", "language", "code", "moderation"})
_EMBEDDING_KEYS = frozenset({"model", "input", "encoding_format"})  # encoding_format: accepted, ignored (Q5)


class TogetherError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _model_entry(body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise TogetherError(400, "model is required", param="model")
    for entry in MODELS:
        if entry["id"] == model:
            return entry
    raise TogetherError(
        404,
        f"Unable to access model {model}. Please visit https://api.together.ai/models to view the list of "
        "supported models.",
        code="model_not_available",
    )


def _positive_int(body: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TogetherError(400, f"{key} must be a positive integer", param=key)
        return value
    return None


@dataclass(slots=True)
class _Plan:
    """One answer, decided once, rendered as a JSON body or as stream chunks."""

    id: str
    created: int
    model: str
    n: int
    tokens: list[str]
    finish_reason: str
    prompt_tokens: int
    tool_call: dict[str, str] | None = None

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) if self.tool_call is None else 24

    def usage(self) -> dict[str, Any]:
        return usage(self.prompt_tokens, self.completion_tokens * self.n)


def _truncate(tokens: list[str], limit: int | None) -> tuple[list[str], str]:
    if limit is not None and len(tokens) > limit:
        return tokens[:limit], "length"
    return tokens, "stop"


def _chosen_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        for tool in tools:
            if (tool.get("function") or {}).get("name") == wanted:
                return tool
        raise TogetherError(400, f"tool_choice names an unknown function: {wanted}", param="tool_choice")
    return tools[0]


def _chat_plan(body: dict[str, Any]) -> _Plan:
    entry = _model_entry(body)
    if entry["type"] not in _CHAT_TYPES:
        raise TogetherError(400, f"Model {entry['id']} is not a chat model (type: {entry['type']}).", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TogetherError(400, "messages must be a non-empty list", param="messages")
    n = _positive_int(body, "n") or 1
    if n > 1 and body.get("stream"):
        raise TogetherError(400, N_WITH_STREAM_MESSAGE, param="n")
    tokens, finish = _truncate(
        split_tokens(chat_reply_text(messages)), _positive_int(body, "max_tokens", "max_completion_tokens")
    )
    plan = _Plan(new_completion_id(), int(time.time()), entry["id"], n, tokens, finish, prompt_token_count(messages))
    answers_tool = isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"
    tool = None if answers_tool else _chosen_tool(body)
    if tool is not None:
        plan.finish_reason = "tool_calls"
        plan.tool_call = {
            "id": tool_call_id(plan.id),
            "name": (tool.get("function") or {}).get("name", ""),
            "arguments": tool_call_arguments(tool, last_user_text(messages)),
        }
    return plan


def _message(plan: _Plan) -> dict[str, Any]:
    message: dict[str, Any] = {
        "content": "".join(plan.tokens),
        "refusal": None,
        "role": "assistant",
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": [],
    }
    if plan.tool_call is not None:
        call = plan.tool_call
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": call["id"],
                "function": {"arguments": call["arguments"], "name": call["name"]},
                "type": "function",
                "index": 0,
            }
        ]
    return message


def chat_response(body: dict[str, Any]) -> dict[str, Any]:
    plan = _chat_plan(body)
    choices = [
        {
            "finish_reason": plan.finish_reason,
            "index": i,
            "logprobs": None,
            "message": _message(plan),
            "seed": seed_for(plan.id, i),
        }
        for i in range(plan.n)
    ]
    return {
        "id": plan.id,
        "choices": choices,
        "created": plan.created,
        "model": plan.model,
        "object": "chat.completion",
        "service_tier": None,
        "system_fingerprint": None,
        "usage": plan.usage(),
        "prompt": [],
    }


def _chunk(plan: _Plan, choice: dict[str, Any], usage_: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": plan.id,
        "choices": [choice],
        "created": plan.created,
        "model": plan.model,
        "object": "chat.completion.chunk",
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_,
    }


def _delta(content: str | None, *, role: str | None = "assistant", tool_calls: Any = None) -> dict[str, Any]:
    return {
        "content": content,
        "function_call": None,
        "refusal": None,
        "role": role,
        "tool_calls": tool_calls,
    }


def _tool_call_chunks(plan: _Plan, call: dict[str, str]) -> list[dict[str, Any]]:
    """Together's tool-call stream: id + name with empty arguments first, then argument fragments."""

    def choice(delta: dict[str, Any]) -> dict[str, Any]:
        return {"delta": delta, "finish_reason": None, "index": 0, "logprobs": None}

    chunks = [
        _chunk(plan, choice(_delta(None))),
        _chunk(
            plan,
            choice(
                _delta(
                    None,
                    role=None,
                    tool_calls=[
                        {
                            "index": 0,
                            "id": call["id"],
                            "function": {"arguments": "", "name": call["name"]},
                            "type": "function",
                        }
                    ],
                )
            ),
        ),
    ]
    args = call["arguments"]
    for start in range(0, len(args), 16):
        fragment = {
            "index": 0,
            "id": None,
            "function": {"arguments": args[start : start + 16], "name": None},
            "type": None,
        }
        chunks.append(_chunk(plan, choice(_delta(None, role=None, tool_calls=[fragment]))))
    return chunks


def chat_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    plan = _chat_plan(body)
    if plan.tool_call is not None:
        chunks = _tool_call_chunks(plan, plan.tool_call)
        final_token = _EOM_TOKEN
    else:
        chunks = [
            _chunk(
                plan,
                {
                    "delta": {**_delta(tok), "token_id": token_id(tok)},
                    "finish_reason": None,
                    "index": 0,
                    "logprobs": None,
                    "text": tok,
                    "seed": None,
                },
            )
            for tok in plan.tokens
        ]
        final_token = _EOT_TOKEN
    # the finish chunk always carries usage, asked for or not (quirk Q7)
    finish = {
        "delta": {**_delta(""), "token_id": final_token},
        "finish_reason": plan.finish_reason,
        "index": 0,
        "logprobs": None,
        "text": "",
        "seed": seed_for(plan.id),
    }
    chunks.append(_chunk(plan, finish, plan.usage()))
    return chunks


def _prompts(body: dict[str, Any]) -> list[str]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return prompt
    raise TogetherError(400, "prompt must be a string or a non-empty list of strings", param="prompt")


def _completion_plans(body: dict[str, Any]) -> list[_Plan]:
    entry = _model_entry(body)
    if entry["type"] not in _CHAT_TYPES:
        raise TogetherError(400, f"Model {entry['id']} does not support completions (type: {entry['type']}).")
    if (_positive_int(body, "n") or 1) > 1 and body.get("stream"):
        raise TogetherError(400, N_WITH_STREAM_MESSAGE, param="n")
    limit = _positive_int(body, "max_tokens")
    completion_id, created = new_completion_id(), int(time.time())
    plans = []
    for prompt in _prompts(body):
        tokens, finish = _truncate(split_tokens(completion_reply_text(prompt)), limit)
        plans.append(_Plan(completion_id, created, entry["id"], 1, tokens, finish, len(split_tokens(prompt)) + 1))
    return plans


def _total_usage(plans: list[_Plan]) -> dict[str, Any]:
    return usage(sum(p.prompt_tokens for p in plans), sum(len(p.tokens) for p in plans))


def completion_response(body: dict[str, Any]) -> dict[str, Any]:
    plans = _completion_plans(body)
    choices = [
        {
            "finish_reason": p.finish_reason,
            "index": i,
            "logprobs": None,
            "text": "".join(p.tokens),
            "seed": seed_for(p.id, i),
        }
        for i, p in enumerate(plans)
    ]
    first = plans[0]
    return {
        "id": first.id,
        "choices": choices,
        "created": first.created,
        "model": first.model,
        "object": "text.completion",
        "system_fingerprint": None,
        "usage": _total_usage(plans),
        "prompt": [],
    }


def completion_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``completion.chunk`` objects; the last token of each choice carries its finish_reason and seed."""
    plans = _completion_plans(body)
    chunks: list[dict[str, Any]] = []
    for index, plan in enumerate(plans):
        for position, tok in enumerate(plan.tokens):
            last = position == len(plan.tokens) - 1
            chunks.append(
                {
                    "id": plan.id,
                    "choices": [
                        {
                            "finish_reason": plan.finish_reason if last else None,
                            "index": index,
                            "logprobs": None,
                            "text": tok,
                            "seed": seed_for(plan.id, index) if last else None,
                            "delta": {"token_id": token_id(tok), "role": "assistant", "content": tok},
                        }
                    ],
                    "created": plan.created,
                    "model": plan.model,
                    "object": "completion.chunk",
                    "system_fingerprint": None,
                    "usage": None,
                }
            )
    chunks[-1]["usage"] = _total_usage(plans)
    return chunks


def _embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and not value:
        raise TogetherError(400, "input must not be an empty list", param="input")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise TogetherError(400, "input must be a string or a list of strings", param="input")


def embeddings_response(body: dict[str, Any]) -> dict[str, Any]:
    extra = sorted(set(body) - _EMBEDDING_KEYS)
    if extra:
        # quirks Q3/Q4: Together refuses `user` and `dimensions` (and anything else it does not know)
        raise TogetherError(400, f"Unrecognized request arguments supplied: {', '.join(extra)}")
    entry = _model_entry(body)
    if entry["type"] != "embedding":
        raise TogetherError(400, f"Model {entry['id']} is not an embedding model (type: {entry['type']}).")
    texts = _embedding_inputs(body)
    dims = EMBEDDING_DIMENSIONS[entry["id"]]
    data = [
        {"embedding": embedding_vector(entry["id"], text, dims), "index": i, "object": "embedding"}
        for i, text in enumerate(texts)
    ]
    tokens = sum(len(split_tokens(t)) for t in texts)
    usage_ = (
        None if entry["id"] in EMBEDDING_MODELS_WITHOUT_USAGE else {"prompt_tokens": tokens, "total_tokens": tokens}
    )
    return {"data": data, "model": entry["id"], "object": "list", "usage": usage_}
