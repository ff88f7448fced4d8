"""Responses API input items -> chat-completions messages (and the items as ``input_items`` lists them).

The translation is llama-stack's (v0.7.1), so replaying its recordings hits: a string becomes a
user message with string content; a message's parts become chat parts (``input_image`` with
``detail`` defaulting to ``auto``); each ``function_call`` becomes its own assistant message,
immediately followed by the tool message of its ``function_call_output`` wherever that output
sits in the input; an image inside a function output is a ``[image]`` placeholder in the tool
message plus a user message carrying the image (chat tool messages cannot hold images). When
the input continues a stored conversation and returns tool outputs, a user message repeating
the conversation's last user message is not sent twice.
"""

from __future__ import annotations

from typing import Any

from relaystack.errors import InvalidRequestError, UnsupportedParameterError
from relaystack.frontends.responses_output import new_id

__all__ = ["input_items", "items_to_messages"]

_TEXT_PARTS = ("input_text", "output_text", "text")
_ROLES = ("user", "assistant", "system", "developer")
# item types a client may send back from an earlier output that only built-in tools produce
_BUILTIN_ITEMS = {
    "web_search_call": "web_search", "file_search_call": "file_search", "computer_call": "computer use",
    "computer_call_output": "computer use", "code_interpreter_call": "code_interpreter",
    "image_generation_call": "image_generation", "local_shell_call": "local_shell",
    "local_shell_call_output": "local_shell", "mcp_list_tools": "MCP", "mcp_call": "MCP",
    "mcp_approval_request": "MCP", "mcp_approval_response": "MCP", "custom_tool_call": "custom tools",
    "custom_tool_call_output": "custom tools",
}  # fmt: skip


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def item_type(item: Any, param: str) -> str:
    if not isinstance(item, dict):
        raise _bad(f"{param} must be an object (a message or a function_call / function_call_output item).", param)
    kind = item.get("type")
    if kind is None and "role" in item:
        return "message"
    if not isinstance(kind, str):
        raise _bad(f"{param}.type is missing.", f"{param}.type")
    return kind


def input_items(raw: Any) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message), validated."""
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise _bad("'input' must be a string or a list of input items.", "input")
    for index, item in enumerate(raw):
        param = f"input[{index}]"
        kind = item_type(item, param)
        if kind in _BUILTIN_ITEMS:
            raise UnsupportedParameterError(
                f"{param} is a '{kind}' item: {_BUILTIN_ITEMS[kind]} is not supported by relaystack's Responses "
                "API (it translates to chat completions; only client-executed function tools are served).",
                param=f"{param}.type",
            )
        if kind == "reasoning":
            raise UnsupportedParameterError(
                f"{param} is a 'reasoning' item: reasoning items cannot be passed on through chat completions; "
                "leave them out of the input.",
                param=f"{param}.type",
            )
        if kind == "item_reference":
            raise UnsupportedParameterError(
                f"{param} is an 'item_reference': send the item itself, or continue with previous_response_id.",
                param=f"{param}.type",
            )
        if kind not in ("message", "function_call", "function_call_output"):
            raise _bad(f"{param}.type {kind!r} is not an input item type relaystack knows.", f"{param}.type")
    return list(raw)


def items_to_messages(items: list[dict[str, Any]], previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages for ``items``; ``previous`` is the stored conversation they continue (or [])."""
    outputs: dict[str, int] = {}
    for index, item in enumerate(items):
        if item_type(item, f"input[{index}]") == "function_call_output":
            outputs.setdefault(_call_id(item, f"input[{index}]"), index)
    repeated_user = _last_user_content(previous) if previous and outputs else None
    consumed: set[int] = set()
    out: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        kind = item_type(item, param)
        if kind == "message":
            message = _message(item, param)
            if repeated_user is not None and message["role"] == "user" and message["content"] == repeated_user:
                continue
            out.append(message)
        elif kind == "function_call":
            out.append(_function_call(item, param))
            answer = outputs.get(_call_id(item, param))
            if answer is not None and answer not in consumed:
                consumed.add(answer)
                out.extend(_tool_messages(items[answer], f"input[{answer}]"))
        elif index not in consumed:
            consumed.add(index)
            out.extend(_tool_messages(item, param))
    return out


def _last_user_content(messages: list[dict[str, Any]]) -> Any:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message.get("content")
    return None


def _call_id(item: dict[str, Any], param: str) -> str:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{param}.call_id must be a non-empty string.", f"{param}.call_id")
    return call_id


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise _bad(f"{param}.role must be one of {', '.join(_ROLES)}.", f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _bad(f"{param}.content must be a string or a list of content parts.", f"{param}.content")
    parts = [_part(part, f"{param}.content[{i}]") for i, part in enumerate(content)]
    if role == "assistant" and all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, param: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _bad(f"{param} must be an object.", param)
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        text = part.get("text")
        if not isinstance(text, str):
            raise _bad(f"{param}.text must be a string.", f"{param}.text")
        return {"type": "text", "text": text}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal") or "")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise UnsupportedParameterError(
                f"{param}: images are taken by URL or data URL ('image_url'); 'file_id' needs the Files API, "
                "which relaystack does not serve.",
                param=f"{param}.image_url",
            )
        return {"type": "image_url", "image_url": {"url": url, "detail": part.get("detail") or "auto"}}
    if kind in ("input_file", "input_audio"):
        raise UnsupportedParameterError(
            f"{param}: '{kind}' parts are not supported (relaystack serves no Files API); send text or images.",
            param=f"{param}.type",
        )
    raise _bad(f"{param}.type {kind!r} is not a content part type relaystack knows.", f"{param}.type")


def _function_call(item: dict[str, Any], param: str) -> dict[str, Any]:
    name = item.get("name")
    arguments = item.get("arguments")
    if not isinstance(name, str) or not name:
        raise _bad(f"{param}.name must be a non-empty string.", f"{param}.name")
    if not isinstance(arguments, str):
        raise _bad(f"{param}.arguments must be a string (JSON-encoded arguments).", f"{param}.arguments")
    call = {"index": 0, "id": _call_id(item, param), "type": "function",
            "function": {"name": name, "arguments": arguments}}  # fmt: skip
    return {"role": "assistant", "tool_calls": [call]}


def _tool_messages(item: dict[str, Any], param: str) -> list[dict[str, Any]]:
    call_id = _call_id(item, param)
    output = item.get("output")
    if isinstance(output, str):
        return [{"role": "tool", "tool_call_id": call_id, "content": output}]
    if not isinstance(output, list):
        raise _bad(f"{param}.output must be a string or a list of content parts.", f"{param}.output")
    parts: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for i, raw in enumerate(output):
        part = _part(raw, f"{param}.output[{i}]")
        if part["type"] == "image_url":
            images.append(part)
            parts.append({"type": "text", "text": "[image]"})
        else:
            parts.append(part)
    messages: list[dict[str, Any]] = [{"role": "tool", "tool_call_id": call_id, "content": parts}]
    if images:
        messages.append({"role": "user", "content": images})
    return messages


def listed_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items as ``GET /v1/responses/{id}/input_items`` shows them: typed, with ids, parts as lists."""
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type") or "message"
        shown = {**item, "type": kind}
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                shown["content"] = [{"type": part, "text": content}]
            shown.setdefault("id", new_id("msg"))
        elif kind == "function_call_output":
            shown.setdefault("id", new_id("fco"))
        elif kind == "function_call":
            shown.setdefault("id", new_id("fc"))
        out.append(shown)
    return out
