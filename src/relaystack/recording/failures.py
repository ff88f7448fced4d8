"""Recorded failures: an upstream error, a refused or timed-out call, a stream that broke.

llama-stack (v0.3+) writes the exception its provider SDK raised as
``{"body": null, "is_exception": true, "exception_data": {...}, "exception_message": "..."}``
and raises it again on replay, so error paths replay deterministically. relaystack writes the
same shape (so llama-stack replays relaystack's recordings too) and adds what an HTTP replay
needs to be exact: ``http_body`` (the body as the upstream sent it) and ``headers`` (only those
a client or router acts on, e.g. ``Retry-After``). Reading is in ``codec.Recording``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from relaystack.recording.codec import ERROR_HEADERS, type_for, typed

__all__ = ["build_error_response", "build_transport_error_response"]

# what an OpenAI SDK exception is called for each status (llama-stack replays it by name)
_ERROR_TYPES = {
    400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError", 404: "NotFoundError",
    409: "ConflictError", 422: "UnprocessableEntityError", 429: "RateLimitError",
}


def build_error_response(status: int, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
    """An upstream HTTP error, as llama-stack records the OpenAI SDK's exception for it."""
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw.decode("utf-8", errors="replace")
    error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
    # the OpenAI SDK's str(exc): "Error code: 429 - {'error': {...}}" (a Python repr)
    message = f"Error code: {status} - {parsed!r}"
    kept = {k: v for k, v in ((n, headers.get(n)) for n in ERROR_HEADERS) if v}
    data: dict[str, Any] = {
        "category": "provider_sdk",
        "provider": "openai",
        "type": _ERROR_TYPES.get(status, "InternalServerError" if status >= 500 else "APIStatusError"),
        "message": message,
        "status_code": status,
        "body": error,
        "http_body": parsed,
        "headers": kept,
    }
    return {"body": None, "is_streaming": False, "is_exception": True, "exception_data": data,
            "exception_message": message}


def build_transport_error_response(
    message: str, *, timeout: bool, operation: str | None = None, chunks: list[Any] | None = None
) -> dict[str, Any]:
    """A call that failed without an HTTP answer (refused, reset, timed out), or a stream that
    broke after ``chunks``: replayed as the same failure."""
    data = {"category": "unknown", "type": "APITimeoutError" if timeout else "APIConnectionError", "message": message}
    if chunks is None:
        body: Any = None
    else:
        body = [typed(type_for(operation, chunk=True), c) for c in chunks]
    return {"body": body, "is_streaming": chunks is not None, "is_exception": True, "exception_data": data,
            "exception_message": message}
