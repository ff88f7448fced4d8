"""The lean Redis connection the limit scripts use: RESP in and out, pipelining, a lost server
and its return, a flushed script cache, and the same URLs as redis-py (password, db)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
import redis

from relaystack.state import StateUnavailableError
from relaystack.state.redis import RedisState
from relaystack.state.redis_wire import RedisWire, ReplyError, encode, parse
from support.backends import REDIS_URL, redis_or_skip
from support.tcp_proxy import TcpProxy
from support.waiting import eventually

ECHO = "return {tonumber(ARGV[1]) + 1, ARGV[2], KEYS[1]}"


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert encode((b"EVALSHA", "ab", 1, "k")) == b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$1\r\nk\r\n"


@pytest.mark.parametrize(("wire", "value"), [
    (b":42\r\n", 42), (b"+OK\r\n", b"OK"), (b"$3\r\nabc\r\n", b"abc"), (b"$-1\r\n", None),
    (b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n:-2\r\n", [1, b"x", [-2]]), (b"*-1\r\n", None), (b"*0\r\n", []),
])
def test_replies_are_parsed(wire: bytes, value: object) -> None:
    assert parse(wire, 0) == (value, len(wire))
    for cut in range(len(wire)):  # a reply split anywhere waits for the rest
        assert parse(wire[:cut], 0) is None


def test_an_error_reply_is_returned_as_an_error() -> None:
    parsed = parse(b"-NOSCRIPT No matching script\r\n", 0)
    assert parsed is not None and isinstance(parsed[0], ReplyError) and str(parsed[0]).startswith("NOSCRIPT")


async def test_concurrent_calls_share_one_pipelined_socket_and_survive_a_script_flush() -> None:
    redis_or_skip()
    wire = RedisWire(REDIS_URL)
    try:
        replies = await asyncio.gather(*(wire.evalsha(ECHO, ["k"], [i, f"a{i}"]) for i in range(200)))
        assert replies == [[i + 1, f"a{i}".encode(), b"k"] for i in range(200)]
        client = redis.Redis.from_url(REDIS_URL)
        client.script_flush()  # as a Redis restart would
        client.close()
        assert await wire.evalsha(ECHO, ["k"], [1, "b"]) == [2, b"b", b"k"]
        with pytest.raises(ReplyError):
            await wire.call(b"NOSUCHCOMMAND")
        assert await wire.call(b"PING") == b"PONG"  # the connection goes on after an error reply
    finally:
        wire.close()


async def test_a_lost_server_fails_calls_as_unavailable_and_its_return_is_used(redis_prefix: str) -> None:
    target = urlsplit(REDIS_URL)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    state = RedisState(f"redis://127.0.0.1:{proxy.port}/0", prefix=redis_prefix, probe_interval_s=0.1, timeout_s=1.0)
    await state.start()
    run = state.script(ECHO)
    try:
        assert await run(["k"], [1, "x"]) == [2, b"x", (redis_prefix + "x:k").encode()]
        await proxy.cut()
        with pytest.raises(StateUnavailableError) as caught:
            await asyncio.wait_for(run(["k"], [1, "x"]), 10)
        assert caught.value.status_code == 503
        await proxy.start()
        assert await eventually(lambda: state.health()["status"] == "OK", 10)
        assert (await run(["k"], [2, "y"]))[0] == 3
    finally:
        await state.stop()
        await proxy.cut()


async def test_a_password_and_a_database_from_the_url_are_used() -> None:
    redis_or_skip()
    wire = RedisWire(REDIS_URL.rsplit("/", 1)[0] + "/3")
    try:
        assert await wire.call(b"CLIENT", b"INFO") is not None
        info = (await wire.call(b"CLIENT", b"INFO")).decode()
        assert " db=3 " in info
    finally:
        wire.close()
    bad = RedisWire(REDIS_URL.replace("redis://", "redis://:wrong-password@"))
    try:
        for _ in range(2):  # this server has no password: AUTH is refused, never silently skipped
            with pytest.raises(ReplyError):
                await bad.call(b"PING")
    finally:
        bad.close()
