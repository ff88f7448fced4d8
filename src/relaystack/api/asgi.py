"""Raw ASGI helpers for the hot path: read a bounded body, send JSON, send errors.

The inference routes skip every framework layer (a FastAPI route plus a pydantic request
model measured +490 µs per request here); these helpers are all they need.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from relaystack.errors import InvalidRequestError, RelaystackError, RequestTooLargeError
from relaystack.json_routes import json_object

__all__ = [
    "DISCONNECT_HOOKS", "HEAD_WRITER", "STREAM_WRITER", "HeadWriter", "Receive", "Scope", "Send", "StreamHead",
    "StreamWriter", "header", "internal_error",
    "parse_json_object", "read_body",
    "send_error", "send_json_with_lines", "send_raw_json",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("relaystack.api")

_JSON_HEADERS = [(b"content-type", b"application/json")]

# relaystack's server (server/protocol.py) puts a list under this scope key; a handler appends a
# callable, called if the client disconnects before the response is complete. Under another ASGI
# server the key is absent, and a handler watches ``receive()`` for ``http.disconnect`` instead.
DISCONNECT_HOOKS = "relaystack.on_disconnect"

# relaystack's server also puts a ``HeadWriter`` under this key: ``write_head(send, status,
# headers, lines)`` writes the response's status line and ``headers`` (checked, as any server
# checks them), then ``lines``: header lines the app rendered itself from constant names and
# numbers (the gateway's x-ratelimit-*), written as they are. It returns False, having written
# nothing, when it cannot: ``send`` is not the server's own for the connection's current request
# (a middleware wraps it and must see the start message, or the request is pipelined), or its
# writes are paused. Then send the start message as usual, those headers as pairs.
HEAD_WRITER = "relaystack.write_head"
HeadWriter = Callable[[Send, int, list[tuple[bytes, bytes]], bytes], bool]

# and a ``StreamWriter`` under this one: ``write_stream(send, head, pieces, end)`` writes the next
# chunk of a chunked response (``pieces`` as one chunk, in one vectored write: no join of a 100 KB
# block), the status line and headers first when ``head`` is (status, headers) (neither
# content-length nor transfer-encoding among them), the last chunk too when ``end``: a stream's
# head, its one block and ``[DONE]`` can be one write instead of three. False, having written
# nothing, under the same conditions as ``HEAD_WRITER`` (and once the response is complete): then
# send the messages as usual.
STREAM_WRITER = "relaystack.write_stream"
StreamHead = tuple[int, list[tuple[bytes, bytes]]]
StreamWriter = Callable[[Send, StreamHead | None, list[bytes], bool], bool]


_HEADER_MAP = "relaystack.headers"


def header(scope: Scope, name: bytes) -> bytes | None:
    """A request header (``name`` lower-case; the first one sent), or None. A request's headers are
    looked up several times (content-length, fault, provider data, ...): the first call maps them
    once, in C, so each lookup is one dict access, not a pass over the ~15 headers an SDK sends."""
    headers = scope.get(_HEADER_MAP)
    if headers is None:
        headers = scope[_HEADER_MAP] = dict(reversed(scope["headers"]))
    value = headers.get(name)
    return None if value is None else bytes(value)


def max_attempts_header(scope: Scope) -> int | None:
    """X-Relaystack-Max-Attempts: N caps this request's attempts (1: no retry, no fallback)."""
    raw = header(scope, b"x-relaystack-max-attempts")
    if raw is None:
        return None
    if not raw.strip().isdigit() or int(raw) < 1:
        raise InvalidRequestError(
            "X-Relaystack-Max-Attempts must be a whole number >= 1 (1: a single attempt, no retry, no fallback).",
            param="X-Relaystack-Max-Attempts",
        )
    return int(raw)


async def read_body(scope: Scope, receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The whole request body; 413 past ``limit`` (before buffering it), 408 if it trickles."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"Request body of {int(declared)} bytes is over the limit of {limit} bytes "
                                   "(server.max_body_bytes).")
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return bytes(body)
    parts = [body]
    size = len(body)
    try:
        async with asyncio.timeout(timeout_s):
            while message.get("more_body"):
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise asyncio.CancelledError
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise RequestTooLargeError(
                        f"Request body is over the limit of {limit} bytes (server.max_body_bytes)."
                    )
                parts.append(chunk)
    except TimeoutError:
        raise _BodyTimeout(f"The request body did not arrive within {timeout_s:g} s.") from None
    return b"".join(parts)


class _BodyTimeout(InvalidRequestError):
    status = 408
    default_code = "request_timeout"


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The hot path's body as a JSON object: ``json_object``'s errors, and an empty body refused."""
    if not raw:
        raise InvalidRequestError("The request body is empty; send a JSON object.")
    return json_object(raw)


async def send_raw_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json_with_lines(send: Send, scope: Scope, status: int, body: bytes,
                               extra: list[tuple[bytes, bytes]], lines: bytes) -> bool:
    """``send_raw_json`` with header ``lines`` written as they are, through the server's
    ``HEAD_WRITER``; False, with nothing sent, when the server has none or it cannot."""
    write_head: HeadWriter | None = scope.get(HEAD_WRITER)
    if write_head is None or not write_head(send, status, [*_JSON_HEADERS, (b"content-length", b"%d" % len(body)),
                                                             *extra], lines):
        return False
    await send({"type": "http.response.body", "body": body})
    return True


async def send_error(send: Send, exc: RelaystackError) -> None:
    extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send_raw_json(send, exc.status_code, orjson.dumps(exc.to_dict()), extra)


def internal_error() -> RelaystackError:
    """What a client sees for a bug: no stack trace, no internals."""
    return RelaystackError("Internal server error. The server log has the details.", code="internal_error")
