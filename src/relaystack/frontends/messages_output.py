"""Chat answers -> Anthropic's Messages shapes: the message, its stream events, its errors.

``stop_reason``: ``stop`` is ``end_turn`` (or ``stop_sequence`` when the upstream names the stop
string it hit, as vLLM does), ``length`` is ``max_tokens``, ``tool_calls`` is ``tool_use``,
``content_filter`` is ``refusal``. Usage: ``prompt_tokens``/``completion_tokens`` become
``input_tokens``/``output_tokens``. A stream is ``message_start``, then per content block
``content_block_start``, its ``content_block_delta``s (``text_delta``, ``input_json_delta``)
and ``content_block_stop``, then ``message_delta`` (stop reason, usage) and ``message_stop``;
a ``ping`` follows the start, as Anthropic sends one. A broken upstream stream ends with an
``error`` event, never with ``message_stop``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from relaystack.errors import RelaystackError
from relaystack.frontends.chat_reader import (
    TEXT,
    TOOL_ARGS,
    TOOL_START,
    Block,
    ChatTurn,
    ToolCall,
    encode_strings,
)
from relaystack.frontends.pipeline import sse_block
from relaystack.frontends.responses_output import new_id
from relaystack.frontends.text_runs import TextRun, TextRuns

__all__ = ["MessagesStream", "anthropic_error", "message_object", "stop_reason", "usage_of"]

log = logging.getLogger("relaystack.frontends")

_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 408: "timeout_error", 413: "request_too_large", 429: "rate_limit_error",
    504: "timeout_error", 529: "overloaded_error",
}  # fmt: skip


def anthropic_error(exc: RelaystackError) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}`` for the error's status."""
    status = exc.status_code
    kind = _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": exc.message}}


def stop_reason(turn: ChatTurn, stop_sequences: list[str]) -> tuple[str | None, str | None]:
    """(stop_reason, stop_sequence)."""
    finish = turn.finish_reason
    if finish == "length":
        return "max_tokens", None
    if finish in ("tool_calls", "function_call") or (finish is None and turn.tools):
        return "tool_use", None
    if finish == "content_filter":
        return "refusal", None
    if turn.stop_reason is not None and turn.stop_reason in stop_sequences:
        return "stop_sequence", turn.stop_reason
    return "end_turn", None


def usage_of(turn: ChatTurn) -> dict[str, Any]:
    usage = turn.usage or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": int(cached or 0),
    }


def _tool_input(call: ToolCall) -> dict[str, Any]:
    text = call.arguments_text.strip()
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        log.warning("Tool call %s: the model's arguments are not JSON; passed on as {'_raw': ...}.", call.id)
        return {"_raw": call.arguments_text}
    return value if isinstance(value, dict) else {"_value": value}


def message_object(message_id: str, model: str, turn: ChatTurn, stop_sequences: list[str]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if turn.text_so_far:
        content.append({"type": "text", "text": turn.text_so_far})
    for call in turn.tool_calls():
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _tool_input(call)})
    reason, sequence = stop_reason(turn, stop_sequences)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_of(turn),
    }


class MessagesStream:
    def __init__(self, message_id: str, model: str, stop_sequences: list[str]) -> None:
        self.message_id = message_id
        self.model = model
        self.stop_sequences = stop_sequences
        self.turn = ChatTurn()
        self._reader = TextRuns(self.turn)
        self._index = -1  # the last content block's index
        self._block_open = False
        self._open_tool: int | None = None  # the chat tool index of the open tool_use block
        self._out: list[bytes] = []

    def _emit(self, event_type: str, payload: dict[str, Any]) -> None:
        self._out.append(sse_block(event_type, {"type": event_type, **payload}))

    def _flush(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0},
        }  # fmt: skip
        self._emit("message_start", {"message": message})
        self._emit("ping", {})
        return self._flush()

    def feed_block(self, block: Block) -> bytes:
        """One relayed block. Runs of plain text events become ``text_delta`` events in one
        ``bytes.join`` (``TextRuns``: their texts spliced in as the upstream escaped them, or
        encoded in one call); any other event goes through the turn, as in ``feed``."""
        for item in self._reader.read(block):
            if type(item) is TextRun:
                self._text_run(item)
            else:
                self._chunk(item)  # type: ignore[arg-type]
        return self._flush()

    def _text_run(self, run: TextRun) -> None:
        self.turn.text.extend(run.texts)
        if not self._block_open or self._open_tool is not None:
            self._open_block({"type": "text", "text": ""})
        head = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                + str(self._index).encode() + b',"delta":{"type":"text_delta","text":"')  # fmt: skip
        tail = b'"}}\n\n'
        spliced = run.spliced(tail + head)
        if spliced is None:
            spliced = (tail + head).join(encode_strings(run.texts))
        self._out += (head, spliced, tail)  # joined once, by _flush

    def feed(self, chunks: list[dict[str, Any]]) -> bytes:
        for chunk in chunks:
            self._chunk(chunk)
        return self._flush()

    def _chunk(self, chunk: dict[str, Any]) -> None:
        """One event, through the turn: whatever it adds, as events."""
        for kind, index, text in self.turn.add(chunk):
            if kind == TEXT:
                if not self._block_open or self._open_tool is not None:
                    self._open_block({"type": "text", "text": ""})
                self._delta({"type": "text_delta", "text": text})
            elif kind == TOOL_START:
                call = self.turn.tools[index]
                self._open_block({"type": "tool_use", "id": call.id, "name": call.name, "input": {}}, index)
            elif kind == TOOL_ARGS and self._open_tool == index:
                self._delta({"type": "input_json_delta", "partial_json": text})

    def finish(self) -> bytes:
        self._close_block()
        reason, sequence = stop_reason(self.turn, self.stop_sequences)
        usage = usage_of(self.turn)
        self._emit("message_delta", {"delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": usage})
        self._emit("message_stop", {})
        return self._flush()

    def fail(self, exc: RelaystackError) -> bytes:
        self._out.append(sse_block("error", anthropic_error(exc)))
        return self._flush()

    def _open_block(self, block: dict[str, Any], tool_index: int | None = None) -> None:
        self._close_block()
        self._index += 1
        self._block_open = True
        self._open_tool = tool_index
        self._emit("content_block_start", {"index": self._index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> None:
        self._emit("content_block_delta", {"index": self._index, "delta": delta})

    def _close_block(self) -> None:
        if self._block_open:
            self._emit("content_block_stop", {"index": self._index})
        self._block_open = False
        self._open_tool = None


def new_message_id() -> str:
    return new_id("msg")
