"""The live upstream: a lean HTTP/1.1 client on asyncio and httptools, a keep-alive pool per origin.

Why not a general client library: measured in-process against the bench's nginx (c=16, one core),
aiohttp's client spends ~80 µs of CPU per request, about half of what relaystack spends on a
whole chat request, and as much as everything relaystack does itself; this client spends
~15 µs (bench/README.md, "Where the time goes"). It does what an API gateway needs from its
upstreams and nothing else:

- HTTP/1.1, keep-alive connections pooled per origin (scheme, host, port, TLS settings), idle
  ones closed after ``keepalive_s``; at most ``limit`` open connections (callers wait beyond);
- requests with a bytes body (``Content-Length``) or none; ``Host``, ``User-Agent: relaystack``
  and ``Accept-Encoding: gzip, deflate`` added unless set; credentials in the URL become Basic auth;
- responses by ``Content-Length``, chunked or until the connection closes (httptools parses
  them), ``gzip``/``deflate`` bodies decoded, read whole or piece by piece as they arrive
  (reading pauses past 1 MiB that nobody consumed);
- TLS through the standard ``ssl`` module (system CAs, a CA bundle, or no verification);
- timeouts: ``connect``, and ``read`` (the longest silence between two reads, waiting for the
  status line included), one timer per request, re-armed only when it fires early;
- a response closed before its end closes its connection (that cancels the upstream's generation);
  one fully read goes back to the pool.

Not done, as no model API needs it: redirects (a 3xx is returned as it is), cookies, proxies,
HTTP/2, brotli, ``Expect: 100-continue``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httptools

from relaystack.errors import UpstreamConnectionError, UpstreamTimeoutError
from relaystack.upstream.base import ResponseHeaders, UpstreamRequest
from relaystack.upstream.quick_ack import quick_ack_switch

__all__ = ["HttpUpstream"]

_HIGH_WATER = 1 << 20  # bytes received and not yet consumed before reading pauses
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class _Origin:
    """Where requests go (scheme, host, port, TLS settings), its idle connections, how many are open
    and who waits for one."""

    __slots__ = ("host", "host_header", "idle", "open", "port", "tls", "waiters")

    def __init__(self, host: str, port: int, host_header: str, tls: ssl.SSLContext | None) -> None:
        self.host, self.port, self.host_header, self.tls = host, port, host_header, tls
        self.idle: collections.deque[_Connection] = collections.deque()
        self.open = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the response it is reading."""

    def __init__(self, upstream: HttpUpstream, origin: _Origin) -> None:
        self.upstream = upstream
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.quick_ack: Callable[[], None] | None = None
        self.reset(0.0)

    def reset(self, read_timeout: float) -> None:
        """Ready for the next response."""
        self.read_timeout = read_timeout
        self.status = 0
        self.headers = ResponseHeaders()
        self.header_name = b""
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.failure: Exception | None = None
        self.body: list[bytes] = []
        self.buffered = 0
        self.received_any = False
        self.paused = False
        self.decoder: Any = None
        self.waiter: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.last_read = 0.0

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.quick_ack = quick_ack_switch(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        self.last_read = self.upstream.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamConnectionError(f"The upstream sent a malformed HTTP response ({exc})."))
            self.close()

    def eof_received(self) -> bool:
        return False  # close: a half-closed connection is of no further use

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.upstream.forget(self)
        if self.complete or self.failure is not None:
            return
        if self.headers_done and not self._length_known():
            self.on_message_complete()  # a body that runs until the connection closes
            return
        reason = f" ({type(exc).__name__}: {exc})" if exc else ""
        what = "mid-stream" if self.headers_done else "before answering"
        self._fail(UpstreamConnectionError(f"The upstream connection broke {what}{reason}."))

    # -- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        dict.__setitem__(self.headers, key, text if previous is None else f"{previous}, {text}")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # an interim answer (e.g. 103): the real one follows
            self.headers = ResponseHeaders()
            return
        self.headers_done = True
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.decoder = _Deflate()
        self._wake()

    def on_body(self, data: bytes) -> None:
        if self.decoder is not None:
            try:
                data = self.decoder.decompress(data)
            except zlib.error as exc:
                self._fail(UpstreamConnectionError(f"The upstream's compressed body is corrupt ({exc})."))
                self.close()
                return
        if not data:
            return
        self.body.append(data)
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done:
            return  # the end of an interim answer
        if self.decoder is not None:
            tail = self.decoder.flush()
            if tail:
                self.body.append(tail)
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # read now: the parser resets after this
        self._stop_timer()
        self._wake()

    # -- request life -----------------------------------------------------------------------
    def start(self, head: bytes, body: bytes | None, read_timeout: float) -> None:
        assert self.transport is not None
        self.reset(read_timeout)
        loop = self.upstream.loop
        self.last_read = loop.time()
        self.timer = loop.call_at(self.last_read + read_timeout, self._on_timer)
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)
        if self.quick_ack is not None:
            self.quick_ack()

    async def wait(self) -> None:
        """Until something new arrived (headers, a piece of body, the end) or the request failed."""
        if self.failure is not None:
            raise self.failure
        self.waiter = self.upstream.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
        if self.failure is not None:
            raise self.failure

    def take(self) -> bytes:
        """Everything received and not yet taken (reading resumes if it paused)."""
        pieces, self.body = self.body, []
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.last_read = self.upstream.loop.time()
            self.transport.resume_reading()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def close(self) -> None:
        self._stop_timer()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _length_known(self) -> bool:
        return "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self.failure is None and not self.complete:
            self.failure = exc
            self._stop_timer()
            self._wake()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timer(self) -> None:
        self.timer = None
        if self.complete or self.failure is not None:
            return
        loop = self.upstream.loop
        silent = loop.time() - self.last_read
        if self.paused or silent < self.read_timeout:
            # data arrived since the timer was armed (or the reader is the slow side): wait on
            self.timer = loop.call_at(loop.time() + self.read_timeout - (0 if self.paused else silent),
                                      self._on_timer)
            return
        self._fail(UpstreamTimeoutError(_timeout_message(self.read_timeout)))
        self.close()


class _Deflate:
    """``Content-Encoding: deflate``: zlib-wrapped as the standard says, or raw as some servers send."""

    def __init__(self) -> None:
        self._inner: Any = None
        self._first = b""

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            self._first += data
            if len(self._first) < 2:
                return b""
            wrapped = (self._first[0] & 0x0F) == 8 and (self._first[0] << 8 | self._first[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data, self._first = self._first, b""
        out: bytes = self._inner.decompress(data)
        return out

    def flush(self) -> bytes:
        if self._inner is None:
            return zlib.decompressobj(-zlib.MAX_WBITS).decompress(self._first) if self._first else b""
        out: bytes = self._inner.flush()
        return out


class _Response:
    """The ``UpstreamResponse`` of one request; its connection goes back to the pool once read."""

    __slots__ = ("_conn", "_released", "headers", "status")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._released = False
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers

    @property
    def complete(self) -> bool:
        """The whole body arrived (a reader that stops now leaves nothing unread on the socket)."""
        return self._conn.complete

    async def read(self) -> bytes:
        conn = self._conn
        try:
            while not conn.complete:
                await conn.wait()
        except UpstreamConnectionError as exc:
            raise UpstreamConnectionError(str(exc).replace("mid-stream", "while reading")) from None
        finally:
            self._finish()
        return conn.take()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        try:
            while True:
                if conn.body:
                    yield conn.take()
                elif conn.complete:
                    return
                else:
                    await conn.wait()
        finally:
            self._finish()

    async def aclose(self) -> None:
        self._finish()

    def _finish(self) -> None:
        """Back to the pool if the whole answer was read, else closed (the upstream stops generating)."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.complete and conn.keep_alive and conn.failure is None and not conn.closed:
            conn.upstream.release(conn)
        else:
            conn.close()


class HttpUpstream:
    """The ``Upstream`` every remote provider sends through (created lazily inside the running loop)."""

    def __init__(self, *, limit: int = 256, keepalive_s: float = 30.0) -> None:
        self._limit = limit
        self._keepalive_s = keepalive_s
        self._origins: dict[tuple[str, str, int, bool | str], _Origin] = {}
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    async def send(self, request: UpstreamRequest) -> _Response:
        self._loop = self._loop or asyncio.get_running_loop()
        origin, target, basic = self._resolve(request.url, request.verify)
        head = _request_head(request, origin, target, basic)
        # a kept-alive connection the server closed as it was reused: an idempotent request is
        # sent once more on a new connection (RFC 9112, 9.3.1), a POST never is
        retry = request.method in _IDEMPOTENT
        while True:
            conn, reused = await self._checkout(origin, request.timeouts.connect, request.url)
            conn.start(head, request.body, request.timeouts.read)
            try:
                while not conn.headers_done:
                    await conn.wait()
            except UpstreamConnectionError as exc:
                conn.close()
                if retry and reused and not conn.received_any:
                    retry = False
                    continue
                raise UpstreamConnectionError(
                    f"Could not get an answer from the upstream at {_origin_text(request.url)}: {exc}"
                ) from None
            except BaseException:  # a timeout, or the caller cancelled: the upstream stops too
                conn.close()
                raise
            return _Response(conn)

    async def aclose(self) -> None:
        for conn in list(self._connections):
            conn.close()
        self._connections.clear()
        self._origins.clear()

    # -- the pool ---------------------------------------------------------------------------
    def _resolve(self, url: str, verify: bool | str) -> tuple[_Origin, bytes, bytes | None]:
        scheme, host, port, host_header, target, basic = _split_url(url)
        key = (scheme, host, port, verify if scheme == "https" else False)
        origin = self._origins.get(key)
        if origin is None:
            tls = _tls_context(verify) if scheme == "https" else None
            origin = self._origins[key] = _Origin(host, port, host_header, tls)
        return origin, target, basic

    async def _checkout(self, origin: _Origin, connect_timeout: float, url: str) -> tuple[_Connection, bool]:
        """A connection to ``origin``, and whether it was reused (from the pool)."""
        idle = origin.idle
        while True:
            while idle:
                conn = idle.pop()
                if not conn.closed and self.loop.time() - conn.idle_since < self._keepalive_s:
                    return conn, True
                conn.close()
            if origin.open < self._limit:
                break
            waiter = self.loop.create_future()
            origin.waiters.append(waiter)
            await waiter
        origin.open += 1
        try:
            conn = await self._connect(origin, connect_timeout, url)
        except BaseException:
            origin.open -= 1
            origin.wake_one()
            raise
        self._connections.add(conn)
        return conn, False

    async def _connect(self, origin: _Origin, timeout: float, url: str) -> _Connection:
        try:
            async with asyncio.timeout(timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self, origin), origin.host, origin.port, ssl=origin.tls,
                    server_hostname=origin.host if origin.tls is not None else None,
                )
        except TimeoutError:
            raise UpstreamTimeoutError(_timeout_message(timeout, connecting=True)) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamConnectionError(
                f"Could not reach the upstream at {_origin_text(url)}: {_describe(exc)}. "
                "Check the provider's base_url and that the service is up."
            ) from None
        return conn

    def release(self, conn: _Connection) -> None:
        conn.idle_since = self.loop.time()
        conn.origin.idle.append(conn)
        conn.origin.wake_one()

    def forget(self, conn: _Connection) -> None:
        """A connection closed (by either side): it no longer counts against the limit."""
        if conn in self._connections:
            self._connections.discard(conn)
            conn.origin.open -= 1
            conn.origin.wake_one()


@lru_cache(maxsize=1024)
def _split_url(url: str) -> tuple[str, str, int, str, bytes, bytes | None]:
    """(scheme, host, port, Host header, request target, Basic credentials) of a URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamConnectionError(f"Cannot call {_origin_text(url)}: only http:// and https:// URLs are supported.")
    port = parts.port or (443 if scheme == "https" else 80)
    netloc = parts.netloc.rpartition("@")[2]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c <= " " or c == "\x7f" for c in target):  # spaces or control characters: not on a request line
        target = quote(target, safe="/?&=%:@!$'()*+,;~-._")
    basic = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        basic = b"Basic " + base64.b64encode(pair)
    return scheme, parts.hostname, port, netloc, target.encode("ascii", "strict"), basic


def _request_head(request: UpstreamRequest, origin: _Origin, target: bytes, basic: bytes | None) -> bytes:
    lines = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    headers = request.headers
    present = {name.lower() for name in headers}
    if len(present) < len(headers):  # the same name twice, in two cases: the last one set wins
        headers = {name.lower(): value for name, value in headers.items()}
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise UpstreamConnectionError(f"Refusing to send the header {name!r}: it holds a line break or a colon.")
        try:
            lines += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
        except UnicodeEncodeError:
            raise UpstreamConnectionError(
                f"Refusing to send the header {name!r}: HTTP headers hold Latin-1 text only."
            ) from None
    if "accept" not in present:
        lines.append(b"Accept: */*\r\n")
    if "host" not in present:
        lines += (b"Host: ", origin.host_header.encode("idna" if not origin.host_header.isascii() else "ascii"),
                  b"\r\n")
    if "user-agent" not in present:
        lines.append(b"User-Agent: relaystack\r\n")
    if "accept-encoding" not in present:
        lines.append(b"Accept-Encoding: gzip, deflate\r\n")
    if basic is not None and "authorization" not in present:
        lines += (b"Authorization: ", basic, b"\r\n")
    if request.body is not None and "content-length" not in present:
        lines += (b"Content-Length: ", str(len(request.body)).encode(), b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


@lru_cache(maxsize=16)
def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """True: the system's CAs; False: no verification (self-signed servers); a path: that CA bundle."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


def _origin_text(url: str) -> str:
    """scheme://host:port only: paths, query strings and user info may carry secrets (``?key=``)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0].rpartition('@')[2]}"


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) or "no reason given"
    return f"{type(exc).__name__} ({reason})"


def _timeout_message(seconds: float, *, connecting: bool = False) -> str:
    what = "connect to" if connecting else "send data from"
    return f"The upstream did not {what} relaystack within {seconds:g} s (timeouts.connect / timeouts.read)."
