"""``SharedState`` on Redis (redis-py asyncio): what several instances share, exactly.

- counters: one Redis hash per key (``{prefix}w:{key}``; fields: window index -> count), read,
  decided and incremented by ONE Lua script using Redis's own clock (``TIME``), so every
  instance agrees on the window and a take is atomic across instances. One key per counter
  keeps it valid on a Redis Cluster too.
- values: ``SET {prefix}v:{key} PX ttl [NX]``.
- scripts (``script``): a caller's own Lua, run atomically, for what the three primitives
  cannot say in one step (the gateway's limits: every window and slot of a request at once).
  Its keys get ``{prefix}x:``. Scripts run on the request path, so they go through
  ``redis_wire.RedisWire`` (one pipelined socket: an admit and its settle cost 27 us of client
  CPU against 152 us through redis-py, ``bench/redis_wire.py``).
- broadcast: ``PUBLISH {prefix}c:{channel}``; the instance listens with ONE ``PSUBSCRIBE
  {prefix}c:*`` connection and dispatches locally, so subscribing costs no round trip. When
  that connection breaks it reconnects, and every callback gets ``None`` (messages may have been
  missed).

A monitor pings Redis every ``probe_interval_s``; while Redis is known to be down, operations
raise ``StateUnavailableError`` at once instead of each waiting on a connect timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff
from redis.exceptions import RedisError

from relaystack.errors import ConfigError, RelaystackError
from relaystack.state.base import MessageCallback, StateUnavailableError, Take
from relaystack.state.redis_wire import RedisWire, ReplyError
from relaystack.state.window import estimate, retry_after

__all__ = ["RedisState", "describe_url"]

log = logging.getLogger("relaystack.state")

_T = TypeVar("_T")

# KEYS[1]: the counter hash. ARGV: window_s, amount, limit (-1: add unconditionally; amount 0: read).
# Returns {allowed, prev, cur before adding, elapsed} (numbers as strings: Redis would truncate floats).
_WINDOW_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local idx = math.floor(now / window)
local elapsed = now - idx * window
local cur = tonumber(redis.call('HGET', KEYS[1], tostring(idx)) or '0')
local prev = tonumber(redis.call('HGET', KEYS[1], tostring(idx - 1)) or '0')
local allowed = 1
if limit >= 0 and prev * (1 - elapsed / window) + cur + amount > limit then allowed = 0 end
if allowed == 1 and amount ~= 0 then
  redis.call('HINCRBY', KEYS[1], tostring(idx), amount)
  if redis.call('HLEN', KEYS[1]) > 2 then
    for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
      if tonumber(field) < idx - 1 then redis.call('HDEL', KEYS[1], field) end
    end
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 2000))
end
return {allowed, tostring(prev), tostring(cur), tostring(elapsed)}
"""


def describe_url(url: str) -> str:
    """``host:port/db`` for logs and /v1/health: never the password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}/{parts.path.lstrip('/') or '0'}"


class RedisState:
    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "relaystack:",
        timeout_s: float = 2.0,
        probe_interval_s: float = 1.0,
        start_timeout_s: float = 10.0,
        max_connections: int = 32,
    ) -> None:
        self.url = url
        self.where = describe_url(url)
        self.prefix = prefix
        self._timeout_s = timeout_s
        self._probe_interval_s = probe_interval_s
        self._start_timeout_s = start_timeout_s
        self._max_connections = max_connections
        self._client: aioredis.Redis | None = None
        self._script: Any = None
        self._wire = RedisWire(url, connect_timeout_s=timeout_s)  # the scripts' own connection
        self._subscribers: dict[str, list[MessageCallback]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._down: str | None = None  # the reason, while Redis is known to be unreachable

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        # a bounded pool that makes a burst wait for a connection instead of failing
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=self._max_connections, timeout=self._timeout_s,
            socket_timeout=self._timeout_s, socket_connect_timeout=self._timeout_s,
            retry=Retry(ConstantBackoff(0.05), 1), health_check_interval=10,
            client_name=f"relaystack:{self.prefix}",  # CLIENT LIST shows whose connections these are
        )
        self._client = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        self._script = self._client.register_script(_WINDOW_SCRIPT)
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            try:
                await self._client.ping()
                break
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    await self._client.aclose()
                    raise ConfigError(
                        f"cannot reach Redis at {self.where} ({type(exc).__name__}). Check state.redis_url "
                        "(or RELAYSTACK_REDIS_URL) and that Redis is running."
                    ) from None
                await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen(), name="relaystack-redis-listen"),
                       loop.create_task(self._watch(), name="relaystack-redis-monitor")]
        log.info("Shared state on Redis %s (prefix %r)", self.where, self.prefix)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._subscribers.clear()
        self._wire.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "redis", "status": "OK" if self._down is None else "unavailable",
                               "url": self.where}
        if self._down is not None:
            out["error"] = self._down
        return out

    # -- availability -------------------------------------------------------------------
    def _mark_down(self, exc: BaseException) -> StateUnavailableError:
        reason = type(exc).__name__
        if self._down is None:
            log.error("Redis %s is unavailable: %s", self.where, reason)
        self._down = reason
        self._wire.abort(reason)  # calls waiting on a silent server fail now
        return self._unavailable()

    def _unavailable(self) -> StateUnavailableError:
        return StateUnavailableError(
            f"The shared state (Redis {self.where}) is unreachable ({self._down}). Retry shortly; "
            "GET /v1/health shows its state.",
            headers={"Retry-After": "1"},
        )

    def _mark_up(self) -> None:
        if self._down is not None:
            log.warning("Redis %s is reachable again", self.where)
            self._down = None

    async def _call(self, fn: Callable[[aioredis.Redis], Awaitable[_T]]) -> _T:
        if self._client is None:
            raise StateUnavailableError("The shared state is not started (or stopped).")
        if self._down is not None:
            raise self._unavailable()
        try:
            return await fn(self._client)
        except (RedisError, OSError) as exc:
            raise self._mark_down(exc) from None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval_s)
            assert self._client is not None
            try:
                await asyncio.wait_for(self._client.ping(), self._timeout_s)
            except (RedisError, OSError, TimeoutError) as exc:
                self._mark_down(exc)
            else:
                self._mark_up()

    # -- windowed counters ----------------------------------------------------------------
    async def _window(self, key: str, amount: int, limit: int, window_s: float) -> tuple[bool, float, float, float]:
        reply = await self._call(lambda _c: self._script(keys=[self.prefix + "w:" + key],
                                                         args=[repr(float(window_s)), amount, limit]))
        return bool(int(reply[0])), float(reply[1]), float(reply[2]), float(reply[3])

    async def take(self, key: str, amount: int, *, limit: int, window_s: float) -> Take:
        allowed, prev, cur, elapsed = await self._window(key, amount, max(limit, 0), window_s)
        used = estimate(prev, cur, elapsed, window_s)
        if allowed:
            return Take(True, used + amount, limit, 0.0)
        return Take(False, used, limit, retry_after(prev, cur, elapsed, window_s, amount, limit))

    async def add(self, key: str, amount: int, *, window_s: float) -> float:
        _allowed, prev, cur, elapsed = await self._window(key, amount, -1, window_s)
        return estimate(prev, cur + amount, elapsed, window_s)

    async def usage(self, key: str, *, window_s: float) -> float:
        _allowed, prev, cur, elapsed = await self._window(key, 0, -1, window_s)
        return estimate(prev, cur, elapsed, window_s)

    # -- scripts ------------------------------------------------------------------------
    def script(self, source: str) -> Callable[[list[str], list[Any]], Awaitable[Any]]:
        """``source`` (Lua) as an async function of (keys, args), run atomically by Redis, with
        this state's availability rules (``StateUnavailableError`` while Redis is down). Keys
        are given this state's prefix; the reply is Redis's (lists, ints, bytes)."""
        prefix = self.prefix + "x:"
        wire = self._wire

        async def run(keys: list[str], args: list[Any]) -> Any:
            if self._down is not None:
                raise self._unavailable()
            try:
                return await wire.evalsha(source, [prefix + key for key in keys], args)
            except (ConnectionError, OSError, TimeoutError) as exc:
                raise self._mark_down(exc) from None
            except ReplyError as exc:
                log.error("Redis %s refused a script: %s", self.where, exc)
                raise RelaystackError("The shared state refused an operation (details in the server log).") from None

        return run

    # -- TTL'd key-value ----------------------------------------------------------------
    async def set(self, key: str, value: bytes, *, ttl_s: float, only_if_absent: bool = False) -> bool:
        ttl_ms = max(1, int(ttl_s * 1000))
        done = await self._call(lambda c: c.set(self.prefix + "v:" + key, value, px=ttl_ms, nx=only_if_absent))
        return bool(done)

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda c: c.get(self.prefix + "v:" + key))
        return value if isinstance(value, bytes) or value is None else str(value).encode()

    async def delete(self, key: str) -> bool:
        return bool(await self._call(lambda c: c.delete(self.prefix + "v:" + key)))

    # -- invalidation broadcast ---------------------------------------------------------
    async def publish(self, channel: str, message: bytes) -> None:
        await self._call(lambda c: c.publish(self.prefix + "c:" + channel, message))

    def subscribe(self, channel: str, callback: MessageCallback) -> Callable[[], None]:
        self._subscribers.setdefault(channel, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(channel, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    async def _listen(self) -> None:
        """One PSUBSCRIBE connection for every channel; reconnects, and reports gaps as None."""
        pattern = self.prefix + "c:*"
        strip = len(self.prefix) + 2
        connected_before = False
        while True:
            assert self._client is not None
            pubsub = self._client.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                if connected_before:
                    self._dispatch_all(None)
                connected_before = True
                # redis-py reconnects (and re-subscribes) by itself after a drop: hear of it too
                assert pubsub.connection is not None
                pubsub.connection.register_connect_callback(self._on_reconnect)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "pmessage":
                        channel = message["channel"]
                        name = (channel.decode() if isinstance(channel, bytes) else str(channel))[strip:]
                        self._dispatch(name, bytes(message["data"]))
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError) as exc:
                log.warning("Redis %s: the broadcast listener lost its connection (%s); reconnecting",
                            self.where, type(exc).__name__)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(0.5)

    def _dispatch(self, channel: str, message: bytes | None) -> None:
        for callback in list(self._subscribers.get(channel, ())):
            try:
                callback(message)
            except Exception:
                log.exception("A subscriber of channel %r failed", channel)

    def _on_reconnect(self, _connection: object) -> None:
        log.warning("Redis %s: the broadcast listener reconnected; subscribers drop their caches", self.where)
        self._dispatch_all(None)

    def _dispatch_all(self, message: None) -> None:
        for channel in list(self._subscribers):
            self._dispatch(channel, message)
