"""Quick ACKs on upstream connections: each request re-arms them, so an upstream holding a small
last segment until it sees an ACK (Nagle's rule) is not kept waiting for our delayed ACK."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import relaystack.upstream.http_client as http_client
from relaystack.upstream.base import Timeouts, UpstreamRequest
from relaystack.upstream.http_client import HttpUpstream
from relaystack.upstream.quick_ack import quick_ack_switch

linux_only = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")


class RecordingSocket:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[int, int, int]] = []
        self.fail = fail

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if self.fail:
            raise OSError("closed")
        self.calls.append((level, option, value))


@linux_only
def test_the_switch_sets_tcp_quickack_each_time_it_is_called() -> None:
    sock = RecordingSocket()
    switch = quick_ack_switch(sock)
    assert switch is not None
    switch()
    switch()
    assert sock.calls == [(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)] * 3  # once when made, once a call


@linux_only
def test_a_socket_that_refuses_gets_no_switch_and_a_closing_one_is_not_an_error() -> None:
    assert quick_ack_switch(RecordingSocket(fail=True)) is None
    assert quick_ack_switch(object()) is None  # no setsockopt (a transport without a socket)
    sock = RecordingSocket()
    switch = quick_ack_switch(sock)
    assert switch is not None
    sock.fail = True
    switch()  # the connection is closing: nothing raised


@linux_only
def test_a_real_tcp_socket_takes_the_option() -> None:
    with socket.socket() as sock:
        assert quick_ack_switch(sock) is not None


async def test_every_request_on_a_kept_connection_re_arms_quick_acks(monkeypatch: pytest.MonkeyPatch) -> None:
    armed: list[int] = []

    def counting_switch(sock: Any) -> Any:
        assert sock is not None  # the connection's own socket
        return lambda: armed.append(1)

    monkeypatch.setattr(http_client, "quick_ack_switch", counting_switch)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client = HttpUpstream()
        for _ in range(3):
            response = await client.send(UpstreamRequest(
                "GET", f"http://127.0.0.1:{port}/v1/models", {}, None, None, False, Timeouts(2.0, 5.0), None, True))
            assert await response.read() == b"{}"
        await client.aclose()
    assert len(armed) == 3


def test_not_linux_means_no_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "TCP_QUICKACK", raising=False)
    assert quick_ack_switch(RecordingSocket()) is None  # the option is looked up when a connection opens
