"""Correctness checks for the front-end scenarios: relaystack's Responses and Messages answers.

The same strictness as the chat checks: status and shape, the caller's model id, the upstream's
exact text (every one of the 499 streamed tokens, in order), a successful end.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["FRONTENDS", "check_frontend"]

# scenario -> relaystack's endpoint
FRONTENDS = {"responses": "responses", "responses500": "responses", "messages": "messages",
             "messages500": "messages"}


def _events(body: bytes) -> list[tuple[str, Any]]:
    """(event name, parsed data) of each SSE event."""
    out = []
    for block in body.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out


def check_frontend(scenario: str, kind: str, body: bytes, accepted: set[Any], text: str,
                   streamed: str) -> list[str]:
    try:
        if scenario == "responses":
            return _responses_json(json.loads(body), accepted, text)
        if scenario == "messages":
            return _messages_json(json.loads(body), accepted, text)
        if not kind.startswith("text/event-stream"):
            return [f"content-type {kind!r}"]
        events = _events(body)
        return _responses_stream(events, accepted, streamed) if scenario == "responses500" else (
            _messages_stream(events, accepted, streamed))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return [f"malformed answer ({exc!r}): {body[:200]!r}"]


def _responses_json(doc: dict[str, Any], accepted: set[Any], text: str) -> list[str]:
    problems = []
    if doc.get("object") != "response" or doc.get("status") != "completed":
        problems.append(f"not a completed response: {str(doc)[:200]}")
    if doc.get("model") not in accepted:
        problems.append(f"model {doc.get('model')!r}")
    if doc["output"][0]["content"][0]["text"] != text:
        problems.append("output text differs from the upstream's")
    return problems


def _messages_json(doc: dict[str, Any], accepted: set[Any], text: str) -> list[str]:
    problems = []
    if doc.get("type") != "message" or doc.get("stop_reason") != "end_turn":
        problems.append(f"not a finished message: {str(doc)[:200]}")
    if doc.get("model") not in accepted:
        problems.append(f"model {doc.get('model')!r}")
    if doc["content"][0]["text"] != text:
        problems.append("content text differs from the upstream's")
    return problems


def _responses_stream(events: list[tuple[str, Any]], accepted: set[Any], streamed: str) -> list[str]:
    problems = []
    types = [data["type"] for _, data in events]
    if not types or types[0] != "response.created" or types[-1] != "response.completed":
        problems.append(f"events run {types[:2]} ... {types[-2:]}")
    if [data["sequence_number"] for _, data in events] != list(range(len(events))):
        problems.append("sequence numbers are not 0..n-1")
    if "".join(d["delta"] for _, d in events if d["type"] == "response.output_text.delta") != streamed:
        problems.append("streamed text differs from the upstream's 499 tokens")
    if events and events[-1][1]["response"]["model"] not in accepted:
        problems.append(f"model {events[-1][1]['response']['model']!r}")
    return problems


def _messages_stream(events: list[tuple[str, Any]], accepted: set[Any], streamed: str) -> list[str]:
    problems = []
    names = [name for name, _ in events]
    if not names or names[0] != "message_start" or names[-1] != "message_stop":
        problems.append(f"events run {names[:2]} ... {names[-2:]}")
    deltas = [d["delta"].get("text", "") for name, d in events if name == "content_block_delta"]
    if "".join(deltas) != streamed:
        problems.append("streamed text differs from the upstream's 499 tokens")
    stops = [d["delta"]["stop_reason"] for name, d in events if name == "message_delta"]
    if stops != ["end_turn"]:
        problems.append(f"stop reasons {stops}")
    if events and events[0][1]["message"]["model"] not in accepted:
        problems.append(f"model {events[0][1]['message']['model']!r}")
    return problems
