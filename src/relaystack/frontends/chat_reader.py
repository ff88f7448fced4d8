"""Read a chat-completions answer (a stream or one JSON completion) as what the model said.

Both front-ends translate from the same thing: ``chat.completion.chunk`` dicts. A stream's
relayed SSE blocks are parsed here (``parse_events``: the one place this package parses SSE,
kept small so it can become the shared parser of ``providers/sse_relay.py`` once that exists);
a JSON completion (a non-streamed answer, or an upstream that answered a stream request with
JSON) is turned into the one chunk that says the same. ``ChatTurn`` accumulates the chunks into
what the model said, for the JSON answers and for storing.

Most of a long stream is plain text: events whose only news is ``delta.content`` of choice 0.
A relayed block is decoded in one ``orjson.loads`` (its events framed as one JSON array with a
byte replace; a block that framing does not fit is parsed event by event), and ``plain_text``
tells such an event apart with a few dict lookups, so the translators can write a whole run of
them with one ``bytes.join`` instead of an event object each (bench/README.md has the costs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from relaystack.errors import UpstreamProtocolError
from relaystack.providers.base import JsonReply, Reply, StreamReply

__all__ = ["TEXT", "TOOL_ARGS", "TOOL_START", "Block", "ChatTurn", "Delta", "ToolCall", "blocks_of",
           "completion_as_chunk", "encode_strings", "parse_block", "parse_events", "plain_text"]

# what one chunk added, in order: (kind, tool index (0 for text), text)
TEXT, TOOL_START, TOOL_ARGS = "text", "tool_start", "tool_args"
Delta = tuple[str, int, str]

# a relayed SSE block, or the chunks a JSON answer amounts to
Block = bytes | list[dict[str, Any]]

_DATA = b"data:"
_DONE = b"[DONE]"
_FRAME = b"\n\ndata: "


def parse_events(block: bytes) -> list[dict[str, Any]]:
    """The JSON events of one relayed SSE block (``data: {...}\\n\\n``, one or more), in order.

    Comments, ``event:`` lines and ``[DONE]`` are skipped. All payloads of a block are decoded
    in one ``orjson.loads`` call (a JSON array built from them), a fraction of one call each.
    """
    payloads: list[bytes] = []
    for event in block.split(b"\n\n"):
        if not event:
            continue
        for line in event.split(b"\n"):
            if line.startswith(_DATA):
                payload = line[5:].strip()
                if payload and payload != _DONE:
                    payloads.append(payload)
    if not payloads:
        return []
    try:
        parsed = orjson.loads(b"[" + b",".join(payloads) + b"]")
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("The upstream sent a malformed stream event (not JSON).") from None
    return [event for event in parsed if isinstance(event, dict)]


def parse_block(block: bytes) -> list[dict[str, Any]]:
    """The JSON events of a relayed block: one ``orjson.loads`` of the events framed as a JSON array
    when every event is one ``data: {...}`` line (what the relay yields), else ``parse_events``."""
    if block.startswith(b"data: {") and block.endswith(b"}\n\n"):
        try:
            parsed = orjson.loads(b"[" + block[6:-2].replace(_FRAME, b",") + b"]")
        except orjson.JSONDecodeError:
            return parse_events(block)
        return [event for event in parsed if isinstance(event, dict)] if isinstance(parsed, list) else []
    return parse_events(block)


_SIMPLE_DELTA = frozenset(("role", "content"))


def plain_text(chunk: dict[str, Any]) -> str | None:
    """The content of an event that is nothing but a text delta of choice 0 ("" for none), else None."""
    try:
        (choice,) = chunk["choices"]
        delta = choice["delta"]
        content = delta.get("content")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if chunk.get("usage") or "error" in chunk or choice.get("finish_reason") or choice.get("logprobs"):
        return None
    if choice.get("index", 0) or type(delta) is not dict:
        return None
    if not delta.keys() <= _SIMPLE_DELTA and (
        delta.get("tool_calls") or delta.get("refusal") or delta.get("function_call")
        or delta.get("reasoning_content") or delta.get("reasoning")
    ):  # fmt: skip
        return None
    if type(content) is str:
        return content
    return "" if content is None else None


def encode_strings(texts: list[str]) -> list[bytes]:
    """Each str as the inside of a JSON string (no quotes), from one ``orjson.dumps``: in a JSON
    array of strings, ``","`` only ever separates two elements (a quote inside one is escaped)."""
    if not texts:
        return []
    return orjson.dumps(texts)[2:-2].split(b'","')


def completion_as_chunk(completion: dict[str, Any]) -> dict[str, Any]:
    """A whole ``chat.completion`` as the one chunk that carries the same content."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    for key in ("refusal", "reasoning_content", "reasoning"):
        if message.get(key):
            delta[key] = message[key]
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(calls) if isinstance(call, dict)]
    chunk_choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason")}
    if choice.get("logprobs"):
        chunk_choice["logprobs"] = choice["logprobs"]
    return {
        "id": completion.get("id"),
        "created": completion.get("created"),
        "choices": [chunk_choice],
        "usage": completion.get("usage"),
    }


async def blocks_of(reply: Reply) -> AsyncIterator[Block]:
    """The reply's relayed blocks (a JSON reply: its one chunk); raises ``RelaystackError`` on a
    broken stream."""
    if isinstance(reply, JsonReply):
        yield [completion_as_chunk(reply.data)]
        return
    assert isinstance(reply, StreamReply)
    blocks = reply.blocks
    try:
        async for block in blocks:
            if block:
                yield block
    finally:
        aclose = getattr(blocks, "aclose", None)
        if aclose is not None:
            await aclose()
        await reply.aclose()


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)

    @property
    def arguments_text(self) -> str:
        return "".join(self.arguments)


@dataclass(slots=True)
class ChatTurn:
    """What the upstream said over one chat completion (choice 0), accumulated chunk by chunk."""

    completion_id: str | None = None
    created: int | None = None
    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tools: dict[int, ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    # vLLM and friends name the stop string that ended the answer
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None
    # the tier that served the request, when the upstream says (OpenAI does)
    service_tier: str | None = None
    logprobs: list[Any] = field(default_factory=list)
    # the logprobs of the last chunk given to add() (a stream's delta event carries them)
    chunk_logprobs: list[Any] = field(default_factory=list)

    def add_block(self, block: Block) -> None:
        """Accumulate a whole block (no deltas wanted: the JSON answers)."""
        if isinstance(block, list):
            for chunk in block:
                self.add(chunk)
            return
        for chunk in parse_block(block):
            text = plain_text(chunk) if self.completion_id is not None else None
            if text is None:
                self.add(chunk)
            elif text:
                self.text.append(text)

    def add(self, chunk: dict[str, Any]) -> list[Delta]:
        """Merge one chunk; returns what it added that a client sees (text, tool calls), in order."""
        out: list[Delta] = []
        self.chunk_logprobs = []
        if self.completion_id is None and isinstance(chunk.get("id"), str):
            self.completion_id = chunk["id"]
            created = chunk.get("created")
            self.created = int(created) if isinstance(created, int | float) else None
        if isinstance(chunk.get("service_tier"), str):
            self.service_tier = chunk["service_tier"]
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._add_choice(choice, out)
        return out

    def _add_choice(self, choice: dict[str, Any], out: list[Delta]) -> None:
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.text.append(content)
            out.append((TEXT, 0, content))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self.refusal.append(refusal)
        for call in delta.get("tool_calls") or ():
            self._add_tool_delta(call, out)
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
            self.logprobs.extend(logprobs["content"])
            self.chunk_logprobs = logprobs["content"]
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        if isinstance(choice.get("stop_reason"), str):
            self.stop_reason = choice["stop_reason"]

    def _add_tool_delta(self, call: Any, out: list[Delta]) -> None:
        if not isinstance(call, dict):
            return
        index = call.get("index", len(self.tools))
        index = index if isinstance(index, int) else 0
        function = call.get("function") or {}
        slot = self.tools.get(index)
        if slot is None:
            name = function.get("name")
            slot = self.tools[index] = ToolCall(str(call.get("id") or f"call_{index}"), str(name or ""))
            out.append((TOOL_START, index, ""))
        else:
            if call.get("id"):
                slot.id = str(call["id"])
            if function.get("name"):
                slot.name += str(function["name"])
        added = function.get("arguments")
        if isinstance(added, str) and added:
            slot.arguments.append(added)
            out.append((TOOL_ARGS, index, added))

    @property
    def text_so_far(self) -> str:
        return "".join(self.text)

    def tool_calls(self) -> list[ToolCall]:
        return [self.tools[i] for i in sorted(self.tools)]
