"""Request checks for the inference routes: cheap, explicit, and naming the field.

Unknown fields are not errors: they are forwarded untouched (the server is transparent).
These checks catch what would otherwise become an upstream 400 with a vaguer message,
or a crash: wrong types of the fields relaystack itself reads.
"""

from __future__ import annotations

from typing import Any

from relaystack.errors import InvalidRequestError

__all__ = ["check_chat", "check_completion", "check_embeddings"]

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})


def _fail(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _check_common(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("'model' is required and must be a non-empty string.", "model")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _fail("'stream' must be a boolean.", "stream")
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1 or n > 128):
        raise _fail("'n' must be an integer from 1 to 128.", "n")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _fail("'stream_options' must be an object.", "stream_options")
        if stream is not True:
            raise _fail("'stream_options' is only allowed when 'stream' is true.", "stream_options")
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise _fail(f"'{name}' must be a number.", name)
    for name in ("max_tokens", "max_completion_tokens", "seed", "top_logprobs"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise _fail(f"'{name}' must be an integer.", name)
    stop = body.get("stop")
    if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and all(
            isinstance(s, str) for s in stop))):
        raise _fail("'stop' must be a string or a list of strings.", "stop")
    store = body.get("store")
    if store is not None and not isinstance(store, bool):
        raise _fail("'store' must be a boolean.", "store")
    return model


def check_chat(body: dict[str, Any]) -> str:
    model = _check_common(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("'messages' is required and must be a non-empty list of message objects.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _fail(f"messages[{index}] must be an object.", f"messages[{index}]")
        role = message.get("role")
        if role not in _ROLES:
            raise _fail(
                f"messages[{index}].role must be one of {', '.join(sorted(_ROLES))}, got {role!r}.",
                f"messages[{index}].role",
            )
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _fail(f"messages[{index}] has role 'tool' and needs a 'tool_call_id'.",
                        f"messages[{index}].tool_call_id")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise _fail("'tools' must be a list of tool objects.", "tools")
        for index, tool in enumerate(tools):
            if tool.get("type", "function") == "function" and not isinstance(tool.get("function"), dict):
                raise _fail(f"tools[{index}].function is required.", f"tools[{index}].function")
    if body.get("tool_choice") is not None and not tools:
        raise _fail("'tool_choice' is only allowed when 'tools' is also provided.", "tool_choice")
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict)
        or response_format.get("type") not in ("text", "json_object", "json_schema")
    ):
        raise _fail("'response_format' must be an object whose type is text, json_object or json_schema.",
                    "response_format")
    return model


def check_completion(body: dict[str, Any]) -> str:
    model = _check_common(body)
    prompt = body.get("prompt")
    if not _is_prompt(prompt):
        raise _fail("'prompt' is required: a string, a list of strings, or token ids.", "prompt")
    return model


def _is_prompt(prompt: Any) -> bool:
    if isinstance(prompt, str):
        return True
    if not isinstance(prompt, list) or not prompt:
        return False
    if all(isinstance(p, str) for p in prompt) or all(isinstance(p, int) for p in prompt):
        return True
    return all(isinstance(p, list) and p and all(isinstance(t, int) for t in p) for p in prompt)


def check_embeddings(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("'model' is required and must be a non-empty string.", "model")
    given = body.get("input")
    if isinstance(given, str):
        pass
    elif isinstance(given, list):
        if not given:
            raise _fail("'input' must not be empty.", "input")
        if len(given) > 2048:
            raise _fail("'input' holds more than 2048 items.", "input")
        if not (all(isinstance(i, str) for i in given) or all(isinstance(i, int) for i in given)
                or all(isinstance(i, list) for i in given)):
            raise _fail("'input' must be a string, a list of strings, or token ids.", "input")
    else:
        raise _fail("'input' is required: a string or a list of strings.", "input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise _fail("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise _fail("'dimensions' must be a positive integer.", "dimensions")
    return model
