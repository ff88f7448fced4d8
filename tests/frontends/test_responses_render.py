"""The response object rendered from a template is the object ``response_object`` builds, field for field;
a stored conversation reads back as it was stored (the answer's text once, in the output)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaystack.frontends.chat_reader import ChatTurn
from relaystack.frontends.responses_output import (
    assistant_message,
    response_object,
    restored_messages,
    stored_answer,
    turn_output,
)
from relaystack.frontends.responses_render import ResponseTemplate, event_with_response

BODIES: list[dict[str, Any]] = [
    {"model": "m"},
    {"model": "m\"odel\u00e9", "instructions": "Be \"brief\"\n", "metadata": {"k": "v"}, "temperature": 0.5,
     "tools": [{"type": "function", "name": "f", "parameters": {}}], "tool_choice": "required",
     "reasoning": {"effort": "low"}, "service_tier": "flex", "store": False, "user": "u\u2028",
     "text": {"format": {"type": "json_object"}}, "parallel_tool_calls": False, "top_p": 1},
    {"model": "m", "instructions": "a request may hold the template's mark: \u0000relaystack:hole\u0000",
     "metadata": {"\u0000relaystack:hole\u0000": "\u0000relaystack:hole\u0000"}},
]  # fmt: skip
ENDS: list[dict[str, Any]] = [
    {"status": "in_progress", "output": []},
    {"status": "completed", "output": [{"type": "message", "id": "msg_1", "content": []}],
     "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}, "service_tier": "default"},
    {"status": "incomplete", "output": [], "incomplete": {"reason": "max_output_tokens"}},
    {"status": "failed", "output": [], "error": {"code": "server_error", "message": "cut \"here\""}},
]  # fmt: skip


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("end", ENDS)
def test_the_rendered_bytes_are_response_object_in_the_same_order(body: dict[str, Any], end: dict[str, Any]) -> None:
    fields = {k: v for k, v in end.items() if k not in ("status", "output")}
    expected = orjson.dumps(response_object("resp_1", 7, body, status=end["status"], output=end["output"], **fields))
    template = ResponseTemplate("resp_1", 7, body)
    rendered = template.rendered(end["status"], orjson.dumps(end["output"]), **fields)
    assert rendered.json == expected  # byte for byte: the same fields, values and order
    assert (rendered.id, rendered.created_at, rendered.model, rendered.status) == ("resp_1", 7, body["model"],
                                                                                 end["status"])  # fmt: skip


class _Recording(dict[str, Any]):
    """A body that notes which fields are read."""

    read: set[str]

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def test_the_kept_pieces_are_keyed_by_every_field_the_object_echoes() -> None:
    from relaystack.frontends.responses_render import _SETTINGS

    body = _Recording(BODIES[1])
    body.read = set()
    response_object("resp_1", 7, body, status="completed", output=[])
    assert body.read <= set(_SETTINGS)


@pytest.mark.parametrize("body", [*BODIES, {"model": "m", "parallel_tool_calls": None, "tool_choice": None},
                                  {"model": "m", "temperature": 1}, {"model": "m", "temperature": 1.0}])
def test_requests_with_the_same_settings_share_pieces_and_keep_their_own_id(body: dict[str, Any]) -> None:
    for response_id, created in (("resp_1", 7), ("resp_\"2\"", 1_800_000_000)):  # the second from the kept pieces
        expected = orjson.dumps(response_object(response_id, created, body, status="completed", output=[]))
        assert ResponseTemplate(response_id, created, body).render("completed", b"[]") == expected


def test_a_response_event_wraps_the_rendered_object() -> None:
    event = event_with_response("response.created", 3, b'{"id":"resp_1"}')
    assert event.startswith(b"event: response.created\ndata: ") and event.endswith(b"\n\n")
    assert orjson.loads(event.split(b"data: ", 1)[1]) == {"type": "response.created", "sequence_number": 3,
                                                           "response": {"id": "resp_1"}}  # fmt: skip


def _turn(*chunks: dict[str, Any]) -> ChatTurn:
    turn = ChatTurn()
    for chunk in chunks:
        turn.add(chunk)
    return turn


def _chunk(content: str | None = None, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {"content": content, **({"tool_calls": tools} if tools else {})}
    return {"id": "c1", "choices": [{"index": 0, "delta": delta}]}


@pytest.mark.parametrize("turn", [
    _turn(_chunk("Hello "), _chunk("\"world\" \u00e9")),
    _turn(_chunk("Let me look."), _chunk(tools=[{"index": 0, "id": "call_1", "function": {"name": "f",
                                                                                           "arguments": "{}"}}])),
    _turn(_chunk(tools=[{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{\"a\":1}"}}])),
    _turn(),
])  # fmt: skip
def test_a_stored_answer_is_restored_from_the_output_as_the_whole_message(turn: ChatTurn) -> None:
    """The answer's text is stored once (in the response's output); the conversation read back is
    the one stored whole before, key order included (the next request's upstream body)."""
    before = [{"role": "user", "content": "hi"}]
    stored = [*before, stored_answer(turn)]
    assert "content" not in stored[-1]
    output = turn_output(turn)
    whole = [*before, assistant_message(turn)]
    restored = restored_messages(orjson.loads(orjson.dumps(stored)), output)
    assert orjson.dumps(restored) == orjson.dumps(whole)


def test_a_conversation_stored_whole_reads_as_it_is() -> None:
    """Rows stored before the answer's text was kept once: their messages hold the whole answer."""
    old = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert restored_messages(old, [{"type": "message", "content": [{"type": "output_text", "text": "x"}]}]) == old
    assert restored_messages([], []) == []
