"""The Responses API's answer: the ``response`` object, its output items and usage, from a chat turn.

Usage maps ``prompt_tokens``/``completion_tokens`` (and their cached/reasoning details) to
``input_tokens``/``output_tokens``. A chat ``finish_reason`` of ``length`` makes the response
``incomplete`` with reason ``max_output_tokens`` (``content_filter`` likewise), as OpenAI does.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from relaystack.errors import RelaystackError
from relaystack.frontends.chat_reader import ChatTurn, ToolCall

__all__ = [
    "assistant_message",
    "error_object",
    "function_call_item",
    "map_usage",
    "message_item",
    "new_id",
    "new_response_id",
    "response_object",
    "restored_messages",
    "stored_answer",
    "turn_output",
    "turn_status",
]

# the codes OpenAI's ResponseError allows; a failure gets the closest one
_IMAGE_CODES = {
    "invalid_base64": "invalid_base64_image", "invalid_base64_image": "invalid_base64_image",
    "invalid_image": "invalid_image", "invalid_image_url": "invalid_image_url",
    "invalid_image_format": "invalid_image_format", "image_too_large": "image_too_large",
}  # fmt: skip


# random bytes for ids, drawn from the OS in bulk: one getrandom call per 256 ids instead of one
# each (uuid4 costs a few µs under load); a forked child draws its own (never its parent's next ids)
_ID_BYTES = 16
_ID_POOL = 4096
_RESPONSE_RANDOM_BYTES = 9  # a response id's 18 random hex digits, after its 14 of time
_pool = memoryview(b"")
_pool_lock = threading.Lock()
_last_us = 0  # the time the last response id was given (new_response_id)


def _forget_pool() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = memoryview(b""), threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def new_id(prefix: str) -> str:
    """``<prefix>_`` and 32 random hex digits (128 bits from ``os.urandom``), as uuid4().hex was."""
    with _pool_lock:
        drawn = _draw(_ID_BYTES)
    return f"{prefix}_{drawn.hex()}"


def _draw(size: int) -> memoryview:
    """``size`` random bytes from the pool (the caller holds ``_pool_lock``)."""
    global _pool
    if len(_pool) < size:
        _pool = memoryview(os.urandom(_ID_POOL))
    drawn, _pool = _pool[:size], _pool[size:]
    return drawn


def new_response_id() -> str:
    """``resp_`` and 32 hex digits: the time in microseconds (14), then 72 random bits (18). A
    response id starts with its time, as OpenAI's do, so a store's unique index on the id takes each
    new row at its end: a random id lands on a random page of that index, one more page written per
    stored response (put_response alone, c=16: ~10% less CPU). Two in the same microsecond get
    consecutive times, so a process's ids sort in the order it made them."""
    global _last_us
    with _pool_lock:  # one lock for the time and the random part
        _last_us = stamp = max(time.time_ns() // 1000, _last_us + 1)
        drawn = _draw(_RESPONSE_RANDOM_BYTES)
    return f"resp_{stamp:014x}{drawn.hex()}"


def map_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(prompt_details.get("cached_tokens") or 0)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def turn_status(turn: ChatTurn) -> tuple[str, dict[str, Any] | None]:
    """(status, incomplete_details) for a finished turn."""
    if turn.finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if turn.finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def message_item(item_id: str, text: str, status: str, logprobs: list[Any], refusal: str = "") -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text or not refusal:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def function_call_item(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call.id, "name": call.name,
            "arguments": call.arguments_text, "status": status}  # fmt: skip


def turn_output(turn: ChatTurn, item_ids: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The output items of a turn: its text as one message, then one item per tool call.

    ``item_ids`` (``"message"``, ``"tool:<index>"``) keeps the ids a stream already announced.
    """
    ids = item_ids or {}
    status = "incomplete" if turn_status(turn)[0] == "incomplete" else "completed"
    output: list[dict[str, Any]] = []
    text, refusal = turn.text_so_far, "".join(turn.refusal)
    if text or refusal or not turn.tools:
        output.append(message_item(ids.get("message") or new_id("msg"), text, status, turn.logprobs, refusal))
    for index in sorted(turn.tools):
        item_id = ids.get(f"tool:{index}") or new_id("fc")
        output.append(function_call_item(item_id, turn.tools[index], status))
    return output


def assistant_message(turn: ChatTurn) -> dict[str, Any]:
    """The turn as the chat message a continuation sends back (llama-stack's shape)."""
    text = turn.text_so_far
    if not turn.tools:
        return {"role": "assistant", "content": text}
    return {"role": "assistant", "content": text, "tool_calls": _chat_tool_calls(turn)}


def _chat_tool_calls(turn: ChatTurn) -> list[dict[str, Any]]:
    return [
        {"index": i, "id": call.id, "type": "function",
         "function": {"name": call.name, "arguments": call.arguments_text}}
        for i, call in enumerate(turn.tool_calls())
    ]  # fmt: skip


# a stored conversation's last message says its text is the response's output text (not stored twice)
_CONTENT_FROM_OUTPUT = "content_from_output"


def stored_answer(turn: ChatTurn) -> dict[str, Any]:
    """``assistant_message`` as a stored conversation keeps it: without its text, which the stored
    response's output holds already (a long answer would otherwise be stored twice, and a row over
    one SQLite page costs its overflow pages on every insert); ``restored_messages`` puts it back."""
    message: dict[str, Any] = {"role": "assistant", _CONTENT_FROM_OUTPUT: True}
    if turn.tools:
        message["tool_calls"] = _chat_tool_calls(turn)
    return message


def restored_messages(messages: list[Any], output: list[Any]) -> list[Any]:
    """A stored conversation's chat messages with the answer's text put back from the response's
    output (the text of its message items, in order); a row stored whole (older rows) as it is."""
    if not messages or not isinstance(messages[-1], dict) or not messages[-1].get(_CONTENT_FROM_OUTPUT):
        return list(messages)
    text = "".join(
        part.get("text") or ""
        for item in output if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or () if isinstance(part, dict) and part.get("type") == "output_text"
    )  # fmt: skip
    stored = messages[-1]
    answer = {"role": stored.get("role", "assistant"), "content": text}
    answer.update((key, value) for key, value in stored.items() if key not in ("role", _CONTENT_FROM_OUTPUT))
    return [*messages[:-1], answer]


def error_object(exc: RelaystackError) -> dict[str, Any]:
    """A failure as the ``error`` of a failed response, with a code OpenAI's spec allows."""
    status = exc.status_code
    code = _IMAGE_CODES.get(str(exc.code or ""))
    if code is None:
        code = "rate_limit_exceeded" if status == 429 else "invalid_prompt" if 400 <= status < 500 else "server_error"
    return {"code": code, "message": exc.message}


def response_object(
    response_id: str,
    created_at: int,
    body: dict[str, Any],
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    service_tier: str | None = None,
) -> dict[str, Any]:
    """The ``response`` object: the request's settings echoed, the caller's model id, the output;
    ``service_tier`` is the tier the upstream says it used, if it said."""
    reasoning = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "metadata": body.get("metadata") or {},
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": service_tier or body.get("service_tier"),
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs"),
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage,
        "user": body.get("user"),
    }


def now() -> int:
    return int(time.time())
