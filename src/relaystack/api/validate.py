"""Request checks: cheap, explicit, and naming the field (``messages[2].content[0].text``).

Every field of OpenAI's chat, completions and embeddings APIs that a client may set is
type-checked here when present, so a wrong JSON type anywhere is a 400 naming the field and
never a crash further down. ``null`` is accepted for every optional field, as OpenAI does.
Unknown fields are not errors: they are forwarded untouched (the server is transparent) and
the upstream judges them. Query parameters of the admin routes are checked here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from relaystack.errors import InvalidRequestError

__all__ = [
    "check_chat",
    "check_completion",
    "check_embeddings",
    "check_register",
    "query_choice",
    "query_int",
]

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own limit per request

Check = Callable[[Any, str], None]


def _fail(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


# -- field checks: each takes (value, param) and raises naming param ----------------------------
def _string(value: Any, param: str) -> None:
    if not isinstance(value, str):
        raise _fail(f"'{param}' must be a string, not {_kind(value)}.", param)


def _boolean(value: Any, param: str) -> None:
    if not isinstance(value, bool):
        raise _fail(f"'{param}' must be a boolean, not {_kind(value)}.", param)


def _number(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"'{param}' must be a number, not {_kind(value)}.", param)


def _integer(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"'{param}' must be an integer, not {_kind(value)}.", param)


def _object(value: Any, param: str) -> None:
    if not isinstance(value, dict):
        raise _fail(f"'{param}' must be an object, not {_kind(value)}.", param)


def _list_of(item: Check) -> Check:
    def check(value: Any, param: str) -> None:
        if not isinstance(value, list):
            raise _fail(f"'{param}' must be a list, not {_kind(value)}.", param)
        for index, element in enumerate(value):
            item(element, f"{param}[{index}]")

    return check


def _one_of(*checks: Check, what: str) -> Check:
    def check(value: Any, param: str) -> None:
        for candidate in checks:
            try:
                candidate(value, param)
                return
            except InvalidRequestError:
                continue
        raise _fail(f"'{param}' must be {what}, not {_kind(value)}.", param)

    return check


def _n(value: Any, param: str) -> None:
    _integer(value, param)
    if not 1 <= value <= 128:
        raise _fail(f"'{param}' must be an integer from 1 to 128.", param)


def _stop(value: Any, param: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _fail(f"'{param}' must be a string or a list of strings.", param)


def _logit_bias(value: Any, param: str) -> None:
    _object(value, param)
    for key, bias in value.items():
        _number(bias, f"{param}.{key}")


def _stream_options(value: Any, param: str) -> None:
    _object(value, param)
    _optional_fields(value, param, {"include_usage": _boolean, "include_obfuscation": _boolean})


def _optional_fields(obj: dict[str, Any], param: str, checks: Mapping[str, Check]) -> None:
    for key, check in checks.items():
        value = obj.get(key)
        if value is not None:
            check(value, f"{param}.{key}")


# -- chat messages and tools --------------------------------------------------------------------
def _content_part(part: Any, param: str) -> None:
    _object(part, param)
    kind = part.get("type")
    if not isinstance(kind, str):
        raise _fail(f"'{param}.type' is required and must be a string (text, image_url, ...).", f"{param}.type")
    if kind == "text":
        _string(part.get("text"), f"{param}.text")
    elif kind == "image_url":
        _one_of(_string, _object, what="an object with a url")(part.get("image_url"), f"{param}.image_url")


def _content(value: Any, param: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _fail(f"'{param}' must be a string or a list of content parts, not {_kind(value)}.", param)
    for index, part in enumerate(value):
        _content_part(part, f"{param}[{index}]")


def _function_call(value: Any, param: str) -> None:
    _object(value, param)
    _optional_fields(value, param, {"name": _string, "arguments": _one_of(_string, _object, what="a string")})


def _tool_call(value: Any, param: str) -> None:
    _object(value, param)
    _optional_fields(value, param, {"id": _string, "type": _string, "function": _function_call})


_MESSAGE_FIELDS: dict[str, Check] = {
    "content": _content,
    "name": _string,
    "tool_call_id": _string,
    "tool_calls": _list_of(_tool_call),
    "function_call": _function_call,
    "refusal": _string,
    "reasoning_content": _string,
}


def _message(message: Any, param: str) -> None:
    if not isinstance(message, dict):
        raise _fail(f"{param} must be an object, not {_kind(message)}.", param)
    role = message.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        shown = repr(role) if isinstance(role, str) else _kind(role)
        raise _fail(f"{param}.role must be one of {', '.join(sorted(_ROLES))}, got {shown}.", f"{param}.role")
    if len(message) == 2 and role != "tool" and isinstance(message.get("content"), str):
        return  # the usual {"role", "content": "..."}: nothing else to check
    _optional_fields(message, param, _MESSAGE_FIELDS)
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise _fail(f"{param} has role 'tool' and needs a 'tool_call_id'.", f"{param}.tool_call_id")


def _messages(value: Any, param: str) -> None:
    if not isinstance(value, list) or not value:
        raise _fail("'messages' is required and must be a non-empty list of message objects.", param)
    for index, message in enumerate(value):
        _message(message, f"messages[{index}]")


def _function_definition(value: Any, param: str) -> None:
    _object(value, param)
    _string(value.get("name"), f"{param}.name")
    _optional_fields(value, param, {"description": _string, "parameters": _object, "strict": _boolean})


def _tool(value: Any, param: str) -> None:
    _object(value, param)
    kind = value.get("type", "function")
    _string(kind, f"{param}.type")
    if kind == "function":
        if not isinstance(value.get("function"), dict):
            raise _fail(f"{param}.function is required.", f"{param}.function")
        _function_definition(value["function"], f"{param}.function")


def _tool_choice(value: Any, param: str) -> None:
    if isinstance(value, str):
        return
    _object(value, param)
    _optional_fields(value, param, {"type": _string, "function": _object})


def _response_format(value: Any, param: str) -> None:
    if not isinstance(value, dict) or value.get("type") not in _RESPONSE_FORMATS:
        raise _fail("'response_format' must be an object whose type is text, json_object or json_schema.", param)
    _optional_fields(value, param, {"json_schema": _object})


# -- the three bodies --------------------------------------------------------------------------
_COMMON: dict[str, Check] = {
    "stream": _boolean,
    "stream_options": _stream_options,
    "n": _n,
    "temperature": _number,
    "top_p": _number,
    "presence_penalty": _number,
    "frequency_penalty": _number,
    "repetition_penalty": _number,
    "min_p": _number,
    "top_k": _integer,
    "max_tokens": _integer,
    "max_completion_tokens": _integer,
    "seed": _integer,
    "top_logprobs": _integer,
    "logprobs": _one_of(_boolean, _integer, what="a boolean or an integer"),
    "stop": _stop,
    "store": _boolean,
    "user": _string,
    "logit_bias": _logit_bias,
    "metadata": _object,
    "service_tier": _string,
}

_CHAT: dict[str, Check] = {
    **_COMMON,
    "messages": _messages,
    "tools": _list_of(_tool),
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _boolean,
    "response_format": _response_format,
    "functions": _list_of(_function_definition),
    "function_call": _one_of(_string, _object, what="a string or an object"),
    "reasoning_effort": _string,
    "modalities": _list_of(_string),
    "prediction": _object,
    "audio": _object,
    "web_search_options": _object,
    "verbosity": _string,
    "prompt_cache_key": _string,
    "safety_identifier": _string,
}

_COMPLETION: dict[str, Check] = {**_COMMON, "echo": _boolean, "best_of": _integer, "suffix": _string}


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("'model' is required and must be a non-empty string.", "model")
    return model


def _check_fields(body: dict[str, Any], checks: Mapping[str, Check]) -> None:
    for key, value in body.items():
        check = checks.get(key)
        if check is not None and value is not None:
            check(value, key)


def _check_generation(body: dict[str, Any], checks: Mapping[str, Check]) -> str:
    model = _model(body)
    _check_fields(body, checks)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise _fail("'stream_options' is only allowed when 'stream' is true.", "stream_options")
    return model


def check_chat(body: dict[str, Any]) -> str:
    model = _check_generation(body, _CHAT)
    if "messages" not in body or body["messages"] is None:
        raise _fail("'messages' is required and must be a non-empty list of message objects.", "messages")
    if body.get("tool_choice") is not None and not body.get("tools"):
        raise _fail("'tool_choice' is only allowed when 'tools' is also provided.", "tool_choice")
    return model


def check_completion(body: dict[str, Any]) -> str:
    model = _check_generation(body, _COMPLETION)
    if not _is_prompt(body.get("prompt")):
        raise _fail("'prompt' is required: a string, a list of strings, or token ids.", "prompt")
    return model


def _is_prompt(prompt: Any) -> bool:
    if isinstance(prompt, str):
        return True
    if not isinstance(prompt, list) or not prompt:
        return False
    if all(isinstance(p, str) for p in prompt) or all(_is_token(p) for p in prompt):
        return True
    return all(isinstance(p, list) and p and all(_is_token(t) for t in p) for p in prompt)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _input(given: Any, param: str) -> None:
    if isinstance(given, str):
        return
    if not isinstance(given, list):
        raise _fail("'input' is required: a string, a list of strings, or token ids.", param)
    if not given:
        raise _fail("'input' must not be empty.", param)
    if len(given) > MAX_EMBEDDING_INPUTS:
        raise _fail(f"'input' holds more than {MAX_EMBEDDING_INPUTS} items.", param)
    if not (all(isinstance(i, str) for i in given) or all(_is_token(i) for i in given)
            or all(isinstance(i, list) and i and all(_is_token(t) for t in i) for i in given)):
        raise _fail("'input' must be a string, a list of strings, or token ids.", param)


def _encoding_format(value: Any, param: str) -> None:
    if value not in ("float", "base64") or not isinstance(value, str):
        raise _fail("'encoding_format' must be 'float' or 'base64'.", param)


def _dimensions(value: Any, param: str) -> None:
    _integer(value, param)
    if value < 1:
        raise _fail("'dimensions' must be a positive integer.", param)


_EMBEDDINGS: dict[str, Check] = {
    "encoding_format": _encoding_format,
    "dimensions": _dimensions,
    "user": _string,
}


def check_embeddings(body: dict[str, Any]) -> str:
    model = _model(body)
    _input(body.get("input"), "input")
    _check_fields(body, _EMBEDDINGS)
    return model


# -- admin routes -------------------------------------------------------------------------------
_REGISTER: dict[str, Check] = {
    "provider_id": _string,
    "provider_model_id": _string,
    "model_type": _string,
    "metadata": _object,
}


def check_register(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/models``: the types of llama-stack's register_model fields."""
    model_id = body.get("model_id")
    if not isinstance(model_id, str) or not model_id:
        raise _fail("'model_id' is required and must be a non-empty string.", "model_id")
    _check_fields(body, _REGISTER)
    return body


def query_int(query: Mapping[str, str], name: str, default: int) -> int:
    """A whole-number query parameter: ASCII digits only (``int()`` also takes '²' and '١')."""
    text = query.get(name)
    if text is None or text == "":
        return default
    if len(text) > 18 or not text.isascii() or not text.isdigit():
        raise _fail(f"Query parameter '{name}' must be a whole number, got {text[:40]!r}.", name)
    return int(text)


def query_choice(query: Mapping[str, str], name: str, choices: tuple[str, ...], default: str | None) -> Any:
    text = query.get(name)
    if text is None or text == "":
        return default
    if text not in choices:
        raise _fail(f"Query parameter '{name}' must be one of {', '.join(choices)}, got {text[:40]!r}.", name)
    return text
