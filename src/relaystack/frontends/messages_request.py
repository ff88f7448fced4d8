"""An Anthropic ``POST /v1/messages`` body -> the chat-completions body relaystack sends.

- ``system`` (a string or text blocks) becomes one leading system message;
- user ``text`` and ``image`` blocks become chat parts (a base64 image becomes a data URL),
  a text-only message a plain string; ``tool_result`` blocks become tool messages placed
  before the rest of their user message (an image in a tool result rides along in a user
  message, as chat tool messages hold text only);
- assistant ``text`` becomes content and ``tool_use`` becomes ``tool_calls`` (the input
  JSON-encoded); ``thinking`` blocks of earlier turns are left out, as Anthropic does;
- ``tools`` (``input_schema``) become function tools; ``tool_choice`` ``auto``/``any``/``tool``/
  ``none`` become ``auto``/``required``/the named function/``none``, and
  ``disable_parallel_tool_use`` becomes ``parallel_tool_calls: false``;
- ``max_tokens``, ``stop_sequences`` (as ``stop``), ``temperature``, ``top_p``, ``top_k`` (for
  providers that take it; one that does not answers its own 400) and ``metadata.user_id`` (as
  ``user``) pass on; a stream asks for usage (``stream_options.include_usage``).
- ``output_config.format`` (a JSON schema) becomes ``response_format``, ``output_config.effort``
  ``reasoning_effort``.
Server tools, MCP servers and containers are a 400 naming them. Hints with no chat-completions
equivalent that do not change what a valid answer is (``thinking``, ``cache_control``,
``inference_geo``, ``speed``, ``diagnostics``, ``user_profile_id``, ``workspace_id``) are accepted
and named in the ``X-Relaystack-Ignored`` response header: Claude Code and friends send them
with every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from relaystack.errors import InvalidRequestError, UnsupportedParameterError

__all__ = ["MessagesRequest", "chat_messages", "parse_messages_request"]

# accepted, not sent upstream, named in X-Relaystack-Ignored
IGNORED = ("thinking", "cache_control", "inference_geo", "speed", "diagnostics", "user_profile_id", "workspace_id")
_KNOWN = {
    "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k", "metadata",
    "stream", "tools", "tool_choice", "service_tier", "container", "mcp_servers", "output_config", *IGNORED,
}  # fmt: skip
_NOT_SERVED = {
    "container": "code-execution containers are not served",
    "mcp_servers": "MCP servers are not served (relaystack translates to chat completions)",
}


@dataclass(slots=True)
class MessagesRequest:
    body: dict[str, Any]
    model: str
    stream: bool
    chat_body: dict[str, Any]
    ignored: list[str]  # fields accepted but not sent upstream


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def parse_messages_request(body: dict[str, Any], *, count_only: bool = False) -> MessagesRequest:
    """Validate and translate; ``count_only`` (count_tokens) needs no ``max_tokens``."""
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise _bad(f"Unknown field(s): {', '.join(unknown)}. Remove them.", unknown[0])
    for key, why in _NOT_SERVED.items():
        if body.get(key) is not None:
            raise UnsupportedParameterError(f"'{key}' is not supported: {why}.", param=key)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model: field required (the id of a chat model; GET /v1/models lists them).", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream: must be a boolean.", "stream")
    chat: dict[str, Any] = {"model": model, "messages": chat_messages(body)}
    if not count_only:
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _bad("max_tokens: field required, an integer >= 1.", "max_tokens")
        chat["max_tokens"] = max_tokens
    _sampling(body, chat)
    _output_config(body.get("output_config"), chat)
    tools = _tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
    _tool_choice(body.get("tool_choice"), chat, bool(tools))
    if stream and not count_only:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    ignored = [key for key in IGNORED if body.get(key) not in (None, {"type": "disabled"})]
    return MessagesRequest(body, model, stream and not count_only, chat, ignored)


def _output_config(config: Any, chat: dict[str, Any]) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise _bad("output_config: must be an object.", "output_config")
    if config.get("effort") is not None:
        chat["reasoning_effort"] = config["effort"]
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise _bad("output_config.format: must be {'type': 'json_schema', 'schema': {...}}.", "output_config.format")
    chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}


def _sampling(body: dict[str, Any], chat: dict[str, Any]) -> None:
    for key in ("temperature", "top_p", "top_k", "service_tier"):
        if body.get(key) is not None:
            chat[key] = body[key]
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("stop_sequences: must be a list of strings.", "stop_sequences")
        if stops:
            chat["stop"] = stops
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]


def _system(system: Any) -> str | None:
    if system is None or system == "":
        return None
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise _bad(f"system.{i}: system blocks must be text blocks.", f"system.{i}")
            texts.append(block["text"])
        return "\n\n".join(texts)
    raise _bad("system: must be a string or a list of text blocks.", "system")


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _bad("messages: field required, a non-empty list.", "messages")
    out: list[dict[str, Any]] = []
    system = _system(body.get("system"))
    if system is not None:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(raw):
        param = f"messages.{i}"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _bad(f"{param}.role: must be 'user' or 'assistant'.", f"{param}.role")
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
        elif isinstance(content, list):
            blocks = content
            out.extend(_user(blocks, param) if message["role"] == "user" else [_assistant(blocks, param)])
        else:
            raise _bad(f"{param}.content: must be a string or a list of content blocks.", f"{param}.content")
    return out


def _block_type(block: Any, param: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _bad(f"{param}: each content block must be an object with a 'type'.", param)
    return str(block["type"])


def _user(blocks: list[Any], param: str) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content.{j}"
        kind = _block_type(block, where)
        if kind == "tool_result":
            tools.extend(_tool_result(block, where))
        elif kind in ("text", "image"):
            parts.append(_part(block, where))
        elif kind == "document":
            raise UnsupportedParameterError(f"{where}: 'document' blocks are not supported; send text.", param=where)
        else:
            raise _bad(f"{where}.type {kind!r} is not a user content block relaystack knows.", f"{where}.type")
    out = list(tools)
    if parts:
        out.append({"role": "user", "content": _joined(parts)})
    return out


def _joined(parts: list[dict[str, Any]]) -> Any:
    """Text-only content as one string (every chat upstream takes it), else chat parts."""
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _part(block: dict[str, Any], where: str) -> dict[str, Any]:
    if block["type"] == "text":
        if not isinstance(block.get("text"), str):
            raise _bad(f"{where}.text: must be a string.", f"{where}.text")
        return {"type": "text", "text": block["text"]}
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise _bad(f"{where}.source: an image needs a 'base64' or 'url' source.", f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: dict[str, Any], where: str) -> list[dict[str, Any]]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise _bad(f"{where}.tool_use_id: field required.", f"{where}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, inner in enumerate(content):
            part = _part(inner, f"{where}.content.{k}") if _block_type(inner, where) in ("text", "image") else None
            if part is None:
                raise _bad(f"{where}.content.{k}: tool results hold text and image blocks.", f"{where}.content")
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
                texts.append("[image]")
    elif content is not None:
        raise _bad(f"{where}.content: must be a string or a list of blocks.", f"{where}.content")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    out: list[dict[str, Any]] = [{"role": "tool", "tool_call_id": tool_use_id, "content": text}]
    if images:
        out.append({"role": "user", "content": images})
    return out


def _assistant(blocks: list[Any], param: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content.{j}"
        kind = _block_type(block, where)
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise _bad(f"{where}: a tool_use block needs 'id' and 'name'.", where)
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": arguments}})  # fmt: skip
        elif kind in ("thinking", "redacted_thinking"):
            continue  # earlier turns' thinking is not shown to the model again
        else:
            raise _bad(f"{where}.type {kind!r} is not an assistant content block relaystack knows.", f"{where}.type")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad("tools: must be a list.", "tools")
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _bad(f"{where}: must be an object.", where)
        if tool.get("type") not in (None, "custom"):
            raise UnsupportedParameterError(
                f"{where}: server tool {tool.get('type')!r} is not supported; relaystack serves client tools "
                "(name, description, input_schema) only.",
                param=f"{where}.type",
            )
        if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
            raise _bad(f"{where}: a tool needs a 'name' and an 'input_schema' object.", where)
        function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(choice: Any, chat: dict[str, Any], has_tools: bool) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise _bad("tool_choice: must be {'type': 'auto' | 'any' | 'tool' | 'none'}.", "tool_choice")
    kind = choice["type"]
    if kind == "none" and not has_tools:
        return  # nothing to choose from: chat upstreams reject a tool_choice without tools
    if not has_tools:
        raise _bad("tool_choice: set, but 'tools' is empty.", "tool_choice")
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise _bad("tool_choice.name: field required for type 'tool'.", "tool_choice.name")
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") is True and has_tools:
        chat["parallel_tool_calls"] = False
