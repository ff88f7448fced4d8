"""The response object rendered from a template is the object ``response_object`` builds, field for field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from relaystack.frontends.responses_output import response_object
from relaystack.frontends.responses_render import ResponseTemplate, event_with_response

BODIES: list[dict[str, Any]] = [
    {"model": "m"},
    {"model": "m\"odel\u00e9", "instructions": "Be \"brief\"\n", "metadata": {"k": "v"}, "temperature": 0.5,
     "tools": [{"type": "function", "name": "f", "parameters": {}}], "tool_choice": "required",
     "reasoning": {"effort": "low"}, "service_tier": "flex", "store": False, "user": "u\u2028",
     "text": {"format": {"type": "json_object"}}, "parallel_tool_calls": False, "top_p": 1},
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


def test_a_response_event_wraps_the_rendered_object() -> None:
    event = event_with_response("response.created", 3, b'{"id":"resp_1"}')
    assert event.startswith(b"event: response.created\ndata: ") and event.endswith(b"\n\n")
    assert orjson.loads(event.split(b"data: ", 1)[1]) == {"type": "response.created", "sequence_number": 3,
                                                           "response": {"id": "resp_1"}}  # fmt: skip
