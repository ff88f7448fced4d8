"""The limits uvicorn's httptools protocol lacks, added to it and nothing more.

What uvicorn (0.3x-0.5x) with httptools gives and lacks, measured with raw sockets:

- idle keep-alive timeout: given (``timeout_keep_alive``), but armed only after a response;
- header size limit: lacking (an 8 MB header is read and handed to the app; llhttp has no
  limit and uvicorn's ``h11_max_incomplete_event_size`` applies to h11 only);
- header-read timeout: lacking (a connection that sends nothing, or one byte of a request
  line every few seconds, is kept forever: slow-loris);
- a cap: ``limit_concurrency`` counts connections *or* tasks and answers a plain-text 503.

It also tells a handler when its client disconnects (``api.asgi.DISCONNECT_HOOKS``), so no
request needs a task of its own awaiting ``receive()`` for that (~5 µs a request), and writes a
response head with header lines the app rendered itself appended unchecked
(``api.asgi.HEAD_WRITER``: the gateway's six x-ratelimit-* headers, ~3.5 µs a request less).

``GuardedHttpToolsProtocol`` adds a deadline for the request line and headers (from the
connection's opening, or from the first read that leaves a request's headers incomplete;
cleared when they are complete),
a 431 past ``max_header_bytes``, and an OpenAI-shaped 503 past ``max_connections`` or
``max_concurrent_requests``. A request whose headers arrive in one read pays a few integer
checks: no timer, and the header sizes are summed only when the bytes read could exceed the
limit. Everything else is uvicorn's own code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
)

from relaystack.api.asgi import DISCONNECT_HOOKS, HEAD_WRITER, STREAM_WRITER, Receive, Scope, Send, StreamHead
from relaystack.errors import error_body
from relaystack.server.heap import keep_freed_memory

__all__ = ["ConnectionLimits", "GuardedHttpToolsProtocol"]

log = logging.getLogger("relaystack.server")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024
    header_timeout_s: float = 10.0
    max_connections: int = 2048
    max_concurrent_requests: int = 1024


class _HeadersTooLarge(Exception):
    pass


_last_warning: dict[str, float] = {}


def _warn(key: str, message: str, *args: Any) -> None:
    """A warning at most once a second per kind: an overload must not also flood the log."""
    now = time.monotonic()
    if now - _last_warning.get(key, 0.0) >= 1.0:
        _last_warning[key] = now
        log.warning(message, *args)


def _error_body(status: int, message: str, code: str) -> bytes:
    return orjson.dumps(error_body(status, message, code=code))


def _raw_response(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return b"".join([
        STATUS_LINE[status], b"content-type: application/json\r\n",
        b"content-length: ", str(len(body)).encode(), b"\r\n", extra, b"connection: close\r\n\r\n", body,
    ])


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a header size limit and caps.

    The limits come from the uvicorn ``Config`` (attribute ``relaystack_limits``), so they
    reach every worker process with the config.
    """

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        keep_freed_memory()  # once per process (relaystack.server.heap: a stream's blocks, not page faults)
        limits: ConnectionLimits = getattr(config, "relaystack_limits", None) or ConnectionLimits()
        self._limits = limits
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._chunk_bytes = 0
        self._reading_headers = False
        self._bytes_seen = False
        self._app = self.app
        self._overloaded_app = _overloaded(limits.max_concurrent_requests)
        self._write_head = self.write_head  # bound once per connection, handed to every request
        self._write_stream = self.write_stream

    # -- connection ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._limits.max_connections:
            _warn("connections", "Connection refused: %d open connections is the limit (server.max_connections).",
                  self._limits.max_connections)
            body = _error_body(503, f"The server is at its limit of {self._limits.max_connections} open "
                               "connections (server.max_connections); retry shortly.", "server_overloaded")
            self._reject(503, body, b"retry-after: 1\r\n")
            return
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        cycles = [self.cycle, *(cycle for cycle, _ in self.pipeline)] if self.cycle is not None else []
        super().connection_lost(exc)
        # the handlers still answering learn it at once, without a task per request awaiting receive()
        for cycle in cycles:
            if not cycle.response_complete:
                hooks: list[Callable[[], None]] = cycle.scope.get(DISCONNECT_HOOKS) or []  # type: ignore[assignment]
                for hook in hooks:
                    hook()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self._bytes_seen = True
        self._chunk_bytes = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge) or isinstance(exc.__cause__, _HeadersTooLarge):
                self._too_large()
                return
            raise
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._reading_headers:  # the headers are still incomplete: all of this chunk was headers
            self._header_bytes += len(data)
            if self._header_bytes > self._limits.max_header_bytes:
                self._too_large()  # headers arriving in pieces, already past the limit
            elif self._header_deadline is None:
                self._arm_header_deadline()  # only now: headers that arrive whole need no timer

    # -- request ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._disarm_header_deadline()
        if self._header_bytes + self._chunk_bytes > self._limits.max_header_bytes:
            # only when the bytes read could hold that much: a usual request skips the sum
            size = len(self.url)
            for name, value in self.headers:
                size += len(name) + len(value) + 4
            if size > self._limits.max_header_bytes:
                raise _HeadersTooLarge
        self.app = self._overloaded_app if len(self.tasks) >= self._limits.max_concurrent_requests else self._app
        self.scope[DISCONNECT_HOOKS] = []  # type: ignore[literal-required]
        self.scope[HEAD_WRITER] = self._write_head  # type: ignore[literal-required]
        self.scope[STREAM_WRITER] = self._write_stream  # type: ignore[literal-required]
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._bytes_seen = False

    def write_head(self, send: Send, status: int, headers: list[tuple[bytes, bytes]], lines: bytes) -> bool:
        """``api.asgi.HEAD_WRITER``: what uvicorn's ``send`` does with a start message, ``lines``
        appended as they are. False, nothing written, when uvicorn's own path must do it: ``send``
        is not the current request's own (a middleware wraps it, or the request is pipelined
        behind another), its writes are paused (uvicorn awaits a drain) or its access log is on."""
        cycle = self._cycle_of(send)
        if cycle is None or cycle.response_started or cycle.access_log:
            return False
        cycle.transport.write(_render_head(cycle, status, headers, lines))
        return True

    def write_stream(self, send: Send, head: StreamHead | None, pieces: list[bytes], end: bool) -> bool:
        """``api.asgi.STREAM_WRITER``: what uvicorn's ``send`` does with a start message (``head``)
        and a body message of a chunked response, in one ``writelines`` (a writev: the pieces are
        not joined first). False, nothing written, when uvicorn's own path must do it (as
        ``write_head``), or the response is not one this can frame: a HEAD request's, one with a
        length or a framing of its own, one already complete."""
        cycle = self._cycle_of(send)
        if cycle is None or cycle.response_complete:
            return False
        parts: list[bytes] = []
        if head is not None:
            status, headers = head
            if cycle.response_started or cycle.access_log or cycle.scope["method"] == "HEAD" \
                    or not 200 <= status < 300 or status == 204 or _frames_itself(headers):
                return False
            parts.append(_render_head(cycle, status, headers, b""))
        elif not cycle.response_started or cycle.chunked_encoding is not True:
            return False
        size = sum(map(len, pieces))
        if size:
            parts += (b"%x\r\n" % size, *pieces, b"\r\n")
        if end:
            parts.append(b"0\r\n\r\n")
        cycle.transport.writelines(parts)
        if end:
            cycle.response_complete = True
            cycle.message_event.set()
            if not cycle.keep_alive:
                cycle.transport.close()
        return True

    def _cycle_of(self, send: Send) -> Any:
        """The current request's cycle if ``send`` is its own and it may be written to now, else None."""
        cycle = self.cycle
        if cycle is None or getattr(send, "__self__", None) is not cycle or cycle.disconnected \
                or cycle.flow.write_paused:
            return None
        return cycle

    # -- the limits -----------------------------------------------------------------------
    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self._limits.header_timeout_s, self._header_timeout)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timeout(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served (pipelined bytes arrived meanwhile): not idle
        if not self._bytes_seen:
            self.transport.close()  # connected and said nothing: just close
            return
        _warn("header-timeout", "Closed a connection whose request headers did not arrive within %gs "
              "(server.header_timeout_s).", self._limits.header_timeout_s)
        body = _error_body(408, f"The request headers did not arrive within {self._limits.header_timeout_s:g} s "
                                "(server.header_timeout_s).", "request_timeout")
        self._reject(408, body)

    def _too_large(self) -> None:
        _warn("headers", "Refused a request whose headers exceed %d bytes (server.max_header_bytes).",
              self._limits.max_header_bytes)
        body = _error_body(431, f"The request line and headers exceed {self._limits.max_header_bytes} bytes "
                                "(server.max_header_bytes).", "request_header_fields_too_large")
        self._reject(431, body)

    def _reject(self, status: int, body: bytes, extra: bytes = b"") -> None:
        self._disarm_header_deadline()
        if not self.transport.is_closing():
            self.transport.write(_raw_response(status, body, extra))
            self.transport.close()


def _render_head(cycle: Any, status: int, headers: list[tuple[bytes, bytes]], lines: bytes) -> bytes:
    """A response's status line and headers as uvicorn's ``send`` renders them (checked, the cycle's
    framing and keep-alive noted), ``lines`` appended as they are."""
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    content = [STATUS_LINE[status]]
    closing = False
    for name, value in [*cycle.default_headers, *headers]:
        if HEADER_RE.search(name):
            raise RuntimeError("Invalid HTTP header name.")
        if HEADER_VALUE_RE.search(value):
            raise RuntimeError("Invalid HTTP header value.")
        name = name.lower()
        if name == b"content-length" and cycle.chunked_encoding is None:
            cycle.expected_content_length = int(value.decode())
            cycle.chunked_encoding = False
        elif name == b"transfer-encoding" and value.lower() == b"chunked":
            cycle.expected_content_length = 0
            cycle.chunked_encoding = True
        elif name == b"connection" and b"close" in [token.lower().strip() for token in value.split(b",")]:
            cycle.keep_alive = False
            closing = True
        content.extend([name, b": ", value, b"\r\n"])
    content.append(lines)
    if not cycle.keep_alive and not closing:
        content.append(b"connection: close\r\n")
    if cycle.chunked_encoding is None and cycle.scope["method"] != "HEAD" and status not in (204, 304):
        cycle.chunked_encoding = True
        content.append(b"transfer-encoding: chunked\r\n")
    content.append(b"\r\n")
    return b"".join(content)


def _frames_itself(headers: list[tuple[bytes, bytes]]) -> bool:
    """A content-length or transfer-encoding header: the response is not for ``write_stream`` to frame."""
    return any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in headers)


def _overloaded(limit: int) -> Any:
    body = _error_body(503, f"The server is at its limit of {limit} requests in progress "
                            "(server.max_concurrent_requests); retry shortly.", "server_overloaded")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"retry-after", b"1"), (b"connection", b"close")]

    async def overloaded(scope: Scope, receive: Receive, send: Send) -> None:
        _warn("requests", "Request refused: %d requests in progress is the limit (server.max_concurrent_requests).",
              limit)
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return overloaded
