"""What the ``ResponseStore`` implementations share: row encoding, decoding and errors.

Kept apart (like ``_common.py`` for chat completions) so every backend encodes a response the
same way and answers an unknown id or cursor with the same error.
"""

from __future__ import annotations

from typing import Any

import orjson

from relaystack.errors import InvalidRequestError, NotFoundError
from relaystack.storage.base import RenderedResponse, StoredResponse

__all__ = ["ResponseRow", "decode_response", "encode_response", "response_not_found", "unknown_response_after"]

# (id, created, model, response JSON, input_items JSON, messages JSON, owner): one upsert's parameters
ResponseRow = tuple[str, int, str, bytes, bytes, bytes, str | None]


def encode_response(
    response: dict[str, Any] | RenderedResponse, input_items: list[Any], messages: list[Any], owner: str | None = None
) -> ResponseRow:
    """Serialize on the caller's side: the stored row is a snapshot, and a bad value fails the caller.
    A ``RenderedResponse`` is kept as the bytes the client got (not encoded again)."""
    if isinstance(response, RenderedResponse):
        return (
            response.id, response.created_at, response.model,
            response.json, orjson.dumps(input_items), orjson.dumps(messages), owner,
        )  # fmt: skip
    response_id = response.get("id")
    created = response.get("created_at")
    model = response.get("model")
    if not isinstance(response_id, str) or not response_id:
        raise ValueError(f"cannot store a response without a string 'id' (got {response_id!r})")
    if isinstance(created, float):
        created = int(created)
    if isinstance(created, bool) or not isinstance(created, int):
        raise ValueError(f"response {response_id!r}: 'created_at' must be an integer (got {created!r})")
    if not isinstance(model, str):
        raise ValueError(f"response {response_id!r}: 'model' must be a string (got {model!r})")
    return (
        response_id, created, model,
        orjson.dumps(response), orjson.dumps(input_items), orjson.dumps(messages), owner,
    )  # fmt: skip


def decode_response(response_json: bytes, input_items_json: bytes, messages_json: bytes) -> StoredResponse:
    return StoredResponse(orjson.loads(response_json), orjson.loads(input_items_json), orjson.loads(messages_json))


def response_not_found(response_id: str) -> NotFoundError:
    return NotFoundError(
        f"Response with id '{response_id}' not found. It was never stored (store: false), was deleted, "
        "or lives in another server's storage. GET /v1/responses lists the stored ones.",
        code="response_not_found",
    )


def unknown_response_after(after: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid 'after': there is no stored response with id '{after}'. "
        "Pass the id of a row from a previous page (its 'last_id').",
        param="after",
    )
