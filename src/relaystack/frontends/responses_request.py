"""A ``POST /v1/responses`` body -> the chat-completions body relaystack sends through the router.

The upstream body is the one llama-stack's Responses implementation (v0.7.1) sends, so its
recordings replay: always ``stream: true`` with ``stream_options.include_usage`` (a JSON answer
is assembled from the stream), ``instructions`` as a leading system message, function tools as
``{"type": "function", "function": <the tool as given>}`` with ``parallel_tool_calls`` (default
true) whenever there are tools, ``max_output_tokens`` as ``max_completion_tokens``,
``text.format`` as ``response_format``, ``reasoning.effort`` as ``reasoning_effort``, and
``top_p``/``temperature``/``service_tier``/``safety_identifier``/``prompt_cache_key``/``user``
as they are. Anything relaystack cannot honour through chat completions is a 400 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relaystack.errors import InvalidRequestError, UnsupportedParameterError
from relaystack.frontends.responses_input import input_items

__all__ = ["ResponsesRequest", "parse_responses_request"]

# sent upstream unchanged when the client set them
_PASSED = ("temperature", "top_p", "service_tier", "safety_identifier", "prompt_cache_key", "user")
_KNOWN = {
    "model", "input", "instructions", "stream", "store", "previous_response_id", "tools", "tool_choice",
    "parallel_tool_calls", "max_output_tokens", "text", "reasoning", "include", "metadata", "top_logprobs",
    "stream_options", "truncation", "background", "max_tool_calls", *_PASSED,
}  # fmt: skip
_NOT_SERVED = {
    "conversation": "conversations are not served (continue with previous_response_id)",
    "prompt": "prompt templates are not served (send the text as input or instructions)",
}
_INCLUDE_LOGPROBS = "message.output_text.logprobs"
# accepted and empty: relaystack produces no encrypted reasoning (Codex-style clients always ask)
_INCLUDE_NOTHING = ("reasoning.encrypted_content",)
MIN_OUTPUT_TOKENS = 16


@dataclass(slots=True)
class ResponsesRequest:
    body: dict[str, Any]  # as the client sent it
    model: str
    stream: bool
    store: bool
    items: list[dict[str, Any]]  # this request's input items
    previous_response_id: str | None
    chat_body: dict[str, Any]  # everything but "messages", which need the stored conversation


def parse_responses_request(body: dict[str, Any]) -> ResponsesRequest:
    _reject_unknown(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' is required: the id of a chat model (GET /v1/models).", param="model")
    if "input" not in body:
        raise InvalidRequestError("'input' is required: a string or a list of input items.", param="input")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise InvalidRequestError("'previous_response_id' must be a response id.", param="previous_response_id")
    return ResponsesRequest(
        body=body,
        model=model,
        stream=_flag(body, "stream", False),
        store=_flag(body, "store", True),
        items=input_items(body["input"]),
        previous_response_id=previous,
        chat_body=_chat_body(body, model),
    )


def _reject_unknown(body: dict[str, Any]) -> None:
    for key, why in _NOT_SERVED.items():
        if body.get(key) is not None:
            raise UnsupportedParameterError(f"'{key}' is not supported: {why}.", param=key)
    if body.get("background") is True:
        raise UnsupportedParameterError(
            "'background': true is not supported: relaystack answers in the request (use stream: true for long "
            "answers).",
            param="background",
        )
    if body.get("truncation") not in (None, "disabled"):
        raise UnsupportedParameterError(
            "'truncation' must be 'disabled': relaystack never drops conversation items to fit the context.",
            param="truncation",
        )
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise InvalidRequestError(
            f"Unrecognized request argument(s): {', '.join(unknown)}. relaystack's Responses API does not "
            "know them; remove them.",
            param=unknown[0],
        )


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequestError(f"'{key}' must be true or false.", param=key)
    return value


def _chat_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequestError("'stream_options' must be an object.", param="stream_options")
    stream_options = {"include_usage": True, **(options or {})}
    chat: dict[str, Any] = {"model": model, "stream": True, "stream_options": stream_options}
    for key in _PASSED:
        if body.get(key) is not None:
            chat[key] = body[key]
    tools = _tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
        chat["parallel_tool_calls"] = _flag(body, "parallel_tool_calls", True)
        if body.get("tool_choice") is not None:
            chat["tool_choice"] = _tool_choice(body["tool_choice"])
    elif body.get("tool_choice") not in (None, "auto", "none"):
        raise InvalidRequestError("'tool_choice' names a tool but 'tools' is empty.", param="tool_choice")
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < MIN_OUTPUT_TOKENS:
            raise InvalidRequestError(
                f"Invalid 'max_output_tokens': {max_tokens!r}. Expected an integer >= {MIN_OUTPUT_TOKENS}.",
                param="max_output_tokens",
            )
        chat["max_completion_tokens"] = max_tokens
    _logprobs(body, chat)
    _text_format(body.get("text"), chat)
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise InvalidRequestError("'reasoning' must be an object.", param="reasoning")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
    return chat


def _logprobs(body: dict[str, Any], chat: dict[str, Any]) -> None:
    include = body.get("include") or []
    if not isinstance(include, list) or not all(isinstance(v, str) for v in include):
        raise InvalidRequestError("'include' must be a list of strings.", param="include")
    for value in include:
        if value not in (_INCLUDE_LOGPROBS, *_INCLUDE_NOTHING):
            raise UnsupportedParameterError(
                f"include {value!r} is not supported: relaystack can include {_INCLUDE_LOGPROBS!r} only "
                "(built-in tools and their results are not served).",
                param="include",
            )
    top = body.get("top_logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20):
        raise InvalidRequestError("'top_logprobs' must be an integer from 0 to 20.", param="top_logprobs")
    if top is not None or _INCLUDE_LOGPROBS in include:
        chat["logprobs"] = True
    if top is not None:
        chat["top_logprobs"] = top


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequestError("'tools' must be a list of tools.", param="tools")
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(raw):
        param = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise InvalidRequestError(f"{param} must be an object.", param=param)
        kind = tool.get("type")
        if kind != "function":
            raise UnsupportedParameterError(
                f"{param}: built-in tool {kind!r} is not supported. relaystack's Responses API translates to chat "
                "completions and serves client-executed function tools only ('type': 'function').",
                param=f"{param}.type",
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequestError(f"{param}.name must be a non-empty string.", param=f"{param}.name")
        tools.append({"type": "function", "function": {k: v for k, v in tool.items() if v is not None}})
    return tools


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function" and isinstance(choice.get("name"), str):
            return {"type": "function", "function": {"name": choice["name"]}}
        if kind == "allowed_tools" and isinstance(choice.get("tools"), list):
            named = [_tool_choice(t) for t in choice["tools"]]
            return {"type": "allowed_tools", "allowed_tools": {"mode": choice.get("mode", "auto"), "tools": named}}
        raise UnsupportedParameterError(
            f"tool_choice of type {kind!r} is not supported: only function tools are served.", param="tool_choice"
        )
    raise InvalidRequestError(
        "'tool_choice' must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}.", param="tool_choice"
    )


def _text_format(text: Any, chat: dict[str, Any]) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise InvalidRequestError("'text' must be an object like {'format': {'type': 'text'}}.", param="text")
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
        return
    if kind == "json_schema":
        assert isinstance(fmt, dict)
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise InvalidRequestError(
                "text.format of type 'json_schema' needs a 'name' (string) and a 'schema' (object).",
                param="text.format",
            )
        schema = {k: fmt[k] for k in ("name", "description", "schema", "strict") if fmt.get(k) is not None}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
        return
    raise InvalidRequestError(
        "text.format.type must be 'text', 'json_object' or 'json_schema'.", param="text.format.type"
    )
