"""What every ``Store`` implementation shares: argument checks, row encoding, page shape, errors.

Kept apart so ``SqliteStore`` and ``MemoryStore`` answer a bad ``limit`` or an unknown
``after`` with exactly the same error, and encode a completion exactly the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from relaystack.chat_stream import assemble_chat_stream, is_stream_blob
from relaystack.errors import (
    CompletionNotFoundError,
    InvalidRequestError,
    ServiceUnavailableError,
)
from relaystack.storage.base import CompletionPage

__all__ = [
    "MAX_LIMIT",
    "CompletionRow",
    "StoreClosedError",
    "completion_not_found",
    "encode_completion",
    "encode_model",
    "encode_stream",
    "make_item",
    "make_page",
    "unknown_after",
    "validate_list_args",
]

log = logging.getLogger("relaystack.storage")

# llama-stack had no maximum and its tests ask for 1000; a bound still keeps one page's memory sane
MAX_LIMIT = 10_000

# (id, created, model, completion JSON, input_messages JSON): the bound parameters of one upsert
CompletionRow = tuple[str, int, str, bytes, bytes]


class StoreClosedError(ServiceUnavailableError):
    """A write or read reached a store that is stopped (the server is shutting down) or not started."""

    default_code = "store_closed"


def validate_list_args(limit: int, order: str) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(
            f"Invalid 'limit': {limit!r}. It must be an integer from 1 to {MAX_LIMIT} (default 20).",
            param="limit",
        )
    if order not in ("asc", "desc"):
        raise InvalidRequestError(
            f"Invalid 'order': {order!r}. Valid values are 'asc' and 'desc'.",
            param="order",
        )


def unknown_after(after: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid 'after': there is no stored chat completion with id '{after}'. "
        "Pass the id of a row from a previous page (its 'last_id').",
        param="after",
    )


def completion_not_found(completion_id: str) -> CompletionNotFoundError:
    return CompletionNotFoundError(
        f"Chat completion with id '{completion_id}' not found. "
        "GET /v1/chat/completions lists the stored ones.",
    )


def encode_completion(completion: dict[str, Any], input_messages: list[Any], raw: bytes | None = None) -> CompletionRow:
    """Serialize on the caller's side: the stored row is a snapshot, and a bad value fails the caller.
    ``raw``: the completion's JSON bytes, already made (kept as they are)."""
    completion_id = completion.get("id")
    created = completion.get("created")
    model = completion.get("model")
    if not isinstance(completion_id, str) or not completion_id:
        raise ValueError(f"cannot store a chat completion without a string 'id' (got {completion_id!r})")
    if isinstance(created, float):
        created = int(created)
    if isinstance(created, bool) or not isinstance(created, int):
        raise ValueError(f"chat completion {completion_id!r}: 'created' must be an integer (got {created!r})")
    if not isinstance(model, str):
        raise ValueError(f"chat completion {completion_id!r}: 'model' must be a string (got {model!r})")
    return (completion_id, created, model, raw if raw is not None else orjson.dumps(completion),
            orjson.dumps(input_messages))


def encode_model(model: dict[str, Any]) -> tuple[str, bytes]:
    identifier = model.get("identifier")
    if not isinstance(identifier, str) or not identifier:
        raise ValueError(f"cannot persist a model without a string 'identifier' (got {identifier!r})")
    return identifier, orjson.dumps(model)


def encode_stream(
    completion_id: str, created: int, model: str, events: bytes, input_messages: list[Any]
) -> CompletionRow:
    """A streamed completion, stored as its SSE events: ``make_item`` assembles it when read."""
    if not is_stream_blob(events):
        raise ValueError(f"chat completion {completion_id!r}: stream events must start with 'data:'")
    return (completion_id, created, model, events, orjson.dumps(input_messages))


def make_item(
    completion_id: str, created: int, completion_blob: bytes, input_messages_json: bytes, model: str
) -> dict[str, Any]:
    """A stored row as the API shows it. Never raises: a row that cannot be read (stored by an
    older version, or damaged) is logged once and shown marked, without its content, so one bad
    row never fails a page or a GET."""
    try:
        if is_stream_blob(completion_blob):
            item: Any = assemble_chat_stream(completion_blob, model)
        else:
            item = orjson.loads(completion_blob)
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ValueError("it is not a chat completion with an id")
        messages = orjson.loads(input_messages_json)
        if not isinstance(messages, list):
            raise ValueError("its input messages are not a list")
    except Exception as exc:
        return _unreadable(completion_id, created, model, exc)
    item["input_messages"] = messages
    return item


# ids of unreadable rows already logged (bounded: a store full of bad rows logs the first ones)
_reported: set[str] = set()
_REPORT_LIMIT = 10_000


def _unreadable(completion_id: str, created: int, model: str, exc: Exception) -> dict[str, Any]:
    reason = f"{type(exc).__name__}: {str(exc)[:200]}"
    if completion_id not in _reported and len(_reported) < _REPORT_LIMIT:
        _reported.add(completion_id)
        log.error("Stored chat completion %r cannot be read (%s); it is listed without its content.",
                  completion_id, reason)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [],
        "input_messages": [],
        "relaystack_unreadable": "This stored completion could not be read; its content is not shown. "
        "The server log names the reason.",
    }


def make_page(items: list[dict[str, Any]], has_more: bool) -> CompletionPage:
    return CompletionPage(
        object="list",
        data=items,
        has_more=has_more,
        first_id=items[0]["id"] if items else "",
        last_id=items[-1]["id"] if items else "",
    )
