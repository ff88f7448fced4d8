"""A lean Redis connection for the per-request path: pipelined ``EVALSHA`` over one socket.

The gateway's shared limits run one Lua script per request (two when a request holds a slot or
a tokens window). Through redis-py an admit and its settle cost 152 us of client CPU (pool,
command packing, response callbacks); written here on an ``asyncio.Protocol``, 27 us (c=16,
``bench/redis_wire.py``). Everything else (connecting at start-up, the health
monitor, pub/sub, the rare values) stays on redis-py in ``redis.py``.

One connection, pipelined: every call queues its command and waits for its reply, and Redis
answers in order, so concurrent requests share the socket without a pool. The commands queued
during one event-loop turn go out in one write (one system call for all of them: on loopback a
send costs more than the rest of a call). Replies are
RESP2 (integers, bulk and simple strings, arrays, errors). A lost connection fails every call in
flight with ``ConnectionError`` (``RedisState`` turns it into ``StateUnavailableError``); the
next call reconnects. The URL is read by redis-py's own parser (``redis://``, ``rediss://``,
``unix://``, user, password, db), so both paths accept the same URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from typing import Any

from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

__all__ = ["RedisWire", "ReplyError"]

_CRLF = b"\r\n"


class ReplyError(Exception):
    """Redis answered the command with an error (``-ERR ...``, ``-NOSCRIPT ...``)."""


def encode(args: tuple[Any, ...]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def parse(buffer: bytes | bytearray, start: int) -> tuple[Any, int] | None:
    """One reply from ``buffer[start:]``: (value, the position after it), or None if incomplete."""
    end = buffer.find(_CRLF, start)
    if end < 0:
        return None
    kind, line, position = buffer[start], bytes(buffer[start + 1:end]), end + 2
    if kind == 58:  # ':'
        return int(line), position
    if kind == 36:  # '$'
        size = int(line)
        if size < 0:
            return None, position
        if len(buffer) < position + size + 2:
            return None
        return bytes(buffer[position:position + size]), position + size + 2
    if kind == 42:  # '*'
        count = int(line)
        items: list[Any] = []
        for _ in range(max(count, 0)):
            parsed = parse(buffer, position)
            if parsed is None:
                return None
            item, position = parsed
            items.append(item)
        return (items if count >= 0 else None), position
    if kind == 43:  # '+'
        return line, position
    if kind == 45:  # '-'
        return ReplyError(line.decode(errors="replace")), position
    raise ConnectionError(f"unexpected reply type {chr(kind)!r} from Redis")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None  # asyncio's or uvloop's transport
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buffer = bytearray()
        self.lost: BaseException | None = None
        self.outgoing: list[bytes] = []  # commands of this loop turn, written together by flush()

    def flush(self) -> None:
        outgoing, self.outgoing = self.outgoing, []
        if self.lost is None and outgoing:
            self.transport.write(b"".join(outgoing))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        position = 0
        try:
            while self.waiting:
                parsed = parse(buffer, position)
                if parsed is None:
                    break
                value, position = parsed
                future = self.waiting.popleft()
                if not future.done():
                    if isinstance(value, ReplyError):
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        except ConnectionError as exc:
            self.fail(exc)
            return
        del buffer[:position]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionError("Redis closed the connection"))

    def fail(self, exc: BaseException) -> None:
        self.lost = exc
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(str(exc) or type(exc).__name__))
        if self.transport is not None:
            self.transport.abort()


class RedisWire:
    def __init__(self, url: str, *, connect_timeout_s: float = 2.0) -> None:
        self._options = parse_url(url)
        self._connect_timeout_s = connect_timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._loaded: set[bytes] = set()  # SHA1s this connection has seen loaded

    async def call(self, *args: Any) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        protocol.waiting.append(future)
        if not protocol.outgoing:
            loop.call_soon(protocol.flush)
        protocol.outgoing.append(encode(args))
        return await future

    async def evalsha(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run ``source`` by its SHA1, loading it first on a connection that has not seen it."""
        sha = _sha1(source)
        if sha not in self._loaded:
            await self.call(b"SCRIPT", b"LOAD", source)
            self._loaded.add(sha)
        try:
            return await self.call(b"EVALSHA", sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            self._loaded.discard(sha)  # the server restarted or flushed its scripts
            await self.call(b"SCRIPT", b"LOAD", source)
            self._loaded.add(sha)
            return await self.call(b"EVALSHA", sha, len(keys), *keys, *args)

    def abort(self, reason: str) -> None:
        """Fail every call in flight (the monitor found Redis unreachable); the next call reconnects."""
        if self._protocol is not None and self._protocol.lost is None:
            self._protocol.fail(ConnectionError(reason))

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

    async def _connect(self) -> _Protocol:
        if self._connecting is None:  # one connect at a time; the other callers wait for it
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self._options
        kind = options.get("connection_class")
        if kind is UnixDomainSocketConnection:
            opening = loop.create_unix_connection(_Protocol, options["path"])
        else:
            context = ssl.create_default_context() if kind is SSLConnection else None
            opening = loop.create_connection(_Protocol, options.get("host", "localhost"), options.get("port", 6379),
                                             ssl=context)
        _transport, protocol = await asyncio.wait_for(opening, self._connect_timeout_s)
        self._protocol = protocol
        self._loaded.clear()
        try:
            if options.get("password"):
                user = options.get("username")
                await self.call(b"AUTH", *((user,) if user else ()), options["password"])
            if options.get("db"):
                await self.call(b"SELECT", options["db"])
        except BaseException:
            protocol.fail(ConnectionError("not authenticated"))  # never used half set up
            self._protocol = None
            raise
        return protocol


_SHAS: dict[str, bytes] = {}


def _sha1(source: str) -> bytes:
    sha = _SHAS.get(source)
    if sha is None:
        sha = _SHAS[source] = hashlib.sha1(source.encode()).hexdigest().encode()
    return sha
