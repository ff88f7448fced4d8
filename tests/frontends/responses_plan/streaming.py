"""Checks on a list of Responses stream events, as llama-stack's suite makes them (our own code)."""

from __future__ import annotations

from typing import Any

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
# the error codes OpenAI's ResponseError allows
ERROR_CODES = {
    "server_error", "rate_limit_exceeded", "invalid_prompt", "vector_store_timeout", "invalid_image",
    "invalid_image_format", "invalid_base64_image", "invalid_image_url", "image_too_large", "image_too_small",
    "image_parse_error", "image_content_policy_violation", "invalid_image_mode", "image_file_too_large",
    "unsupported_image_media_type", "empty_image_file", "failed_to_download_image", "image_file_not_found",
}  # fmt: skip


def check_sequence(events: list[Any]) -> None:
    """created first, exactly one terminal event, last; numbered 0..n-1; one response id throughout."""
    types = [e.type for e in events]
    assert types[0] == "response.created", types
    assert sum(t in TERMINAL for t in types) == 1 and types[-1] in TERMINAL, types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    ids = {e.response.id for e in events if hasattr(e, "response")}
    ids |= {e.response_id for e in events if getattr(e, "response_id", None)}
    assert len(ids) == 1, ids


def check_structure(events: list[Any]) -> None:
    for event in events:
        if event.type in ("response.created", "response.in_progress"):
            assert event.response.status == "in_progress"
        elif event.type == "response.completed":
            assert event.response.status == "completed"
        elif event.type == "response.incomplete":
            assert event.response.status == "incomplete"
        elif event.type == "response.failed":
            assert event.response.status == "failed" and event.response.error is not None
            assert event.response.error.code in ERROR_CODES and event.response.error.message
        if hasattr(event, "item_id"):
            assert event.item_id and isinstance(event.output_index, int)
        if event.type in ("response.content_part.added", "response.content_part.done"):
            assert isinstance(event.content_index, int)


def only(events: list[Any], kind: str) -> Any:
    found = [e for e in events if e.type == kind]
    assert len(found) == 1, [e.type for e in events]
    return found[0]
