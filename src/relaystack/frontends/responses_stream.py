"""Chat-completion chunks -> the Responses API's typed stream events, in order, numbered.

``response.created`` and ``response.in_progress`` open the stream; text opens a message item
(``output_item.added``, ``content_part.added``, then ``output_text.delta``s); each tool call
opens a ``function_call`` item (``function_call_arguments.delta``s); an item is closed
(``*.done``, ``output_item.done``) when the next one starts or the upstream finishes; the last
event is ``response.completed``, ``response.incomplete`` (the reason included) or, when the
upstream stream broke, ``response.failed``: never a completion the model did not give.
Every event carries ``sequence_number``; item events carry ``item_id`` and ``output_index``
(a text delta no ``response_id``: neither OpenAI's nor llama-stack's has one, and it is most of
a stream's bytes). A run of text deltas is written in one piece: with the C accelerator by its
``number_pieces`` (each upstream hole spliced between the event's numbered head and its tail, after
the events written before it in the same block), else by one ``bytes.join`` of a list filled by
slice assignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from relaystack import text_template
from relaystack.errors import RelaystackError
from relaystack.frontends.chat_reader import (
    TEXT,
    TOOL_ARGS,
    TOOL_START,
    Block,
    ChatTurn,
    encode_strings,
)
from relaystack.frontends.pipeline import sse_block
from relaystack.frontends.responses_output import (
    error_object,
    function_call_item,
    map_usage,
    message_item,
    new_id,
    turn_status,
)
from relaystack.frontends.responses_render import ResponseTemplate, event_with_response
from relaystack.frontends.text_runs import TextRun, TextRuns
from relaystack.storage.base import RenderedResponse

__all__ = ["ResponsesStream"]

_DELTA_HEAD = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
_DELTA_TAIL = b'","logprobs":[]}\n\n'
_DELTA_BETWEEN = _DELTA_TAIL + _DELTA_HEAD
# a message item's two opening events around their numbers and ids (what _emit would encode)
_MESSAGE_ADDED = (
    b'event: response.output_item.added\ndata: {"type":"response.output_item.added","sequence_number":',
    b',"output_index":', b',"item":{"type":"message","id":"',
    b'","status":"in_progress","role":"assistant","content":[]}}\n\n'
    b'event: response.content_part.added\ndata: {"type":"response.content_part.added","sequence_number":',
    b',"item_id":"', b'","output_index":', b',"content_index":0,"response_id":',
    b',"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]}}\n\n',
)
_NUMBERS: list[bytes] = []
# the C accelerator's numbered splice (absent: not built, or built before it had one)
_NUMBER_PIECES = getattr(text_template.ACCEL, "number_pieces", None)


def _numbers(start: int, count: int) -> list[bytes]:
    """``str(n).encode()`` for n in [start, start + count), from a cache that grows as needed."""
    while len(_NUMBERS) < start + count:
        _NUMBERS.append(str(len(_NUMBERS)).encode())
    return _NUMBERS[start : start + count]


@dataclass(slots=True)
class _Open:
    kind: str  # "message" or "tool"
    item_id: str
    output_index: int
    tool_index: int = 0
    text: list[str] = field(default_factory=list)
    logprobs: list[Any] = field(default_factory=list)
    # a text delta event's bytes between its sequence number and its text (a message's)
    delta_middle: bytes = b""


class ResponsesStream:
    def __init__(self, response_id: str, created_at: int, body: dict[str, Any]) -> None:
        self.response_id = response_id
        self.created_at = created_at
        self.template = ResponseTemplate(response_id, created_at, body)
        self.turn = ChatTurn()
        self._reader = TextRuns(self.turn)
        self.output: list[bytes] = []  # finished items' JSON, in output order
        self._open: _Open | None = None
        self._seq = 0
        self._out: list[bytes] = []

    def _emit(self, event_type: str, payload: dict[str, Any]) -> None:
        self._out.append(sse_block(event_type, {"type": event_type, "sequence_number": self._seq, **payload}))
        self._seq += 1

    def _flush(self) -> bytes:
        out = self._out
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def _emit_response(self, event_type: str, response_json: bytes) -> None:
        self._out.append(event_with_response(event_type, self._seq, response_json))
        self._seq += 1

    def _output_json(self) -> bytes:
        return b"[" + b",".join(self.output) + b"]"

    # -- the stream --------------------------------------------------------------------------
    def start(self) -> bytes:
        opening = self.template.render("in_progress", b"[]")  # the same object in both events
        self._emit_response("response.created", opening)
        self._emit_response("response.in_progress", opening)
        return self._flush()

    def feed_block(self, block: Block) -> bytes:
        """One relayed block. Runs of plain text events become their delta events in one
        ``bytes.join`` (``TextRuns``: their texts spliced in as the upstream escaped them, or
        encoded in one call); any other event goes through the turn, as in ``feed``."""
        for item in self._reader.read(block):
            if type(item) is TextRun:
                self._text_run(item)
            else:
                self._chunk(item)  # type: ignore[arg-type]
        return self._flush()

    def _text_run(self, run: TextRun) -> None:
        texts = run.texts
        self.turn.text.extend(texts)
        opened = self._open
        if opened is None or opened.kind != "message":
            self._close("completed")
            opened = self._open_message()
        opened.text.extend(texts)
        middle = opened.delta_middle
        if run.joined is not None and _NUMBER_PIECES is not None:  # the C path: all events in one bytes,
            written = b"".join(self._out)  # after the ones written before (no second copy of the run)
            self._out[:] = [_NUMBER_PIECES(run.joined, self._seq, _DELTA_HEAD, middle, _DELTA_TAIL, written)]
            self._seq += run.joined.count(b"\n") + 1
            return
        pieces = encode_strings(texts) if run.raw is None else run.raw
        # the events' bytes as a list for _flush's one join: per event, what comes before its
        # sequence number (the previous event's tail and this one's head), the number, the
        # constant middle and the text; filled by slice assignment (no loop in Python)
        count = len(pieces)
        parts = [_DELTA_BETWEEN] * (4 * count + 1)
        parts[0] = _DELTA_HEAD
        parts[1::4] = _numbers(self._seq, count)
        parts[2::4] = [middle] * count
        parts[3::4] = pieces
        parts[-1] = _DELTA_TAIL
        self._seq += count
        self._out += parts

    def feed(self, chunks: list[dict[str, Any]]) -> bytes:
        for chunk in chunks:
            self._chunk(chunk)
        return self._flush()

    def _chunk(self, chunk: dict[str, Any]) -> None:
        """One event, through the turn: whatever it adds, as events."""
        for kind, index, text in self.turn.add(chunk):
            if kind == TEXT:
                self._text(text, self.turn.chunk_logprobs)
            elif kind == TOOL_START:
                self._open_tool(index)
            elif kind == TOOL_ARGS:
                self._tool_args(index, text)

    def finish(self) -> tuple[bytes, RenderedResponse]:
        """The closing events and the final response object (to store)."""
        status, incomplete = turn_status(self.turn)
        item_status = "incomplete" if status == "incomplete" else "completed"
        self._close(item_status)
        if not self.output:  # the model said nothing: still one (empty) message, as a client expects
            self._open_message()
            self._close(item_status)
        final = self.template.rendered(status, self._output_json(), usage=map_usage(self.turn.usage),
                                       incomplete=incomplete, service_tier=self.turn.service_tier)  # fmt: skip
        self._emit_response(f"response.{status}", final.json)
        return self._flush(), final

    def fail(self, exc: RelaystackError) -> tuple[bytes, RenderedResponse]:
        self._close("incomplete")
        final = self.template.rendered("failed", self._output_json(), error=error_object(exc),
                                       usage=map_usage(self.turn.usage))  # fmt: skip
        self._emit_response("response.failed", final.json)
        return self._flush(), final

    # -- items -------------------------------------------------------------------------------
    def _item_event(self, event_type: str, item: dict[str, Any], output_index: int) -> None:
        self._emit(event_type, {"output_index": output_index, "item": item})

    def _item_done(self, item_json: bytes, output_index: int) -> None:
        """``output_item.done`` around the item's JSON (the same bytes the final output holds)."""
        self._out.append(b"".join((
            b'event: response.output_item.done\ndata: {"type":"response.output_item.done","sequence_number":',
            str(self._seq).encode(), b',"output_index":', str(output_index).encode(), b',"item":', item_json, b"}\n\n",
        )))  # fmt: skip
        self._seq += 1

    def _open_message(self) -> _Open:
        opened = _Open("message", new_id("msg"), len(self.output))
        opened.delta_middle = (b',"item_id":"' + opened.item_id.encode() + b'","output_index":'
                               + str(opened.output_index).encode() + b',"content_index":0,"delta":"')  # fmt: skip
        self._open = opened
        item_id, index = opened.item_id.encode(), str(opened.output_index).encode()  # ids: ASCII, no escapes
        a = _MESSAGE_ADDED
        self._out.append(b"".join((
            a[0], str(self._seq).encode(), a[1], index, a[2], item_id, a[3], str(self._seq + 1).encode(), a[4],
            item_id, a[5], index, a[6], orjson.dumps(self.response_id), a[7],
        )))  # fmt: skip
        self._seq += 2
        return opened

    def _part_ids(self, opened: _Open) -> dict[str, Any]:
        return {"item_id": opened.item_id, "output_index": opened.output_index, "content_index": 0,
                "response_id": self.response_id}  # fmt: skip

    @staticmethod
    def _text_part(text: str, logprobs: list[Any]) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}

    def _text(self, text: str, logprobs: list[Any]) -> None:
        opened = self._open
        if opened is None or opened.kind != "message":
            self._close("completed")
            opened = self._open_message()
        opened.text.append(text)
        opened.logprobs.extend(logprobs)
        self._emit("response.output_text.delta", {"item_id": opened.item_id, "output_index": opened.output_index,
                                                  "content_index": 0, "delta": text, "logprobs": logprobs})

    def _open_tool(self, tool_index: int) -> None:
        self._close("completed")
        call = self.turn.tools[tool_index]
        opened = _Open("tool", new_id("fc"), len(self.output), tool_index)
        self._open = opened
        self._item_event("response.output_item.added", function_call_item(opened.item_id, call, "in_progress"),
                         opened.output_index)  # fmt: skip

    def _tool_args(self, tool_index: int, delta: str) -> None:
        opened = self._open
        if opened is None or opened.kind != "tool" or opened.tool_index != tool_index:
            return  # arguments for a call that is no longer open: they are kept in the turn
        self._emit("response.function_call_arguments.delta",
                   {"item_id": opened.item_id, "output_index": opened.output_index, "delta": delta})  # fmt: skip

    def _close(self, status: str) -> None:
        opened, self._open = self._open, None
        if opened is None:
            return
        if opened.kind == "message":
            text = "".join(opened.text)
            ids = self._part_ids(opened)
            self._emit("response.output_text.done", {**ids, "text": text, "logprobs": opened.logprobs})
            self._emit("response.content_part.done", {**ids, "part": self._text_part(text, opened.logprobs)})
            item = message_item(opened.item_id, text, status, opened.logprobs)
        else:
            call = self.turn.tools[opened.tool_index]
            self._emit("response.function_call_arguments.done",
                       {"item_id": opened.item_id, "output_index": opened.output_index,
                        "arguments": call.arguments_text, "name": call.name})  # fmt: skip
            item = function_call_item(opened.item_id, call, status)
        item_json = orjson.dumps(item)
        self.output.append(item_json)
        self._item_done(item_json, opened.output_index)
