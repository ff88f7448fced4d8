"""The server's head writer (api.asgi.HEAD_WRITER): uvicorn's start-message handling, with the
app's own header lines appended, and a refusal whenever uvicorn's path must run instead."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from support.protocol_double import Cycle, protocol_with_cycle

LINES = b"x-ratelimit-limit-requests: 5\r\nx-ratelimit-remaining-requests: 4\r\nx-ratelimit-reset-requests: 12s\r\n"


def test_the_head_is_uvicorns_with_the_lines_appended() -> None:
    protocol, cycle = protocol_with_cycle()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    assert protocol.write_head(cycle.send, 200, headers, LINES)
    assert cycle.transport.written == [
        b"HTTP/1.1 200 OK\r\nserver: relaystack\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
        + LINES + b"\r\n"]
    assert cycle.response_started and cycle.expected_content_length == 2 and cycle.chunked_encoding is False


def test_connection_close_and_a_length_less_answer_as_uvicorn_writes_them() -> None:
    protocol, cycle = protocol_with_cycle(keep_alive=False)
    assert protocol.write_head(cycle.send, 200, [(b"content-type", b"text/event-stream")], LINES)
    head = cycle.transport.written[0]
    assert head.endswith(LINES + b"connection: close\r\ntransfer-encoding: chunked\r\n\r\n")
    assert cycle.chunked_encoding is True


@pytest.mark.parametrize("state", [
    {"response_started": True}, {"disconnected": True}, {"access_log": True},
    {"flow": SimpleNamespace(write_paused=True)},
])
def test_refused_when_uvicorns_own_path_must_run(state: dict[str, Any]) -> None:
    protocol, cycle = protocol_with_cycle(**state)
    assert not protocol.write_head(cycle.send, 200, [(b"content-length", b"2")], LINES)
    assert cycle.transport.written == []


def test_refused_for_a_send_that_is_not_the_current_requests_own() -> None:
    protocol, cycle = protocol_with_cycle()
    other = Cycle()

    async def wrapped(message: Any) -> None:  # a middleware's send (CORS): it must see the start message
        await cycle.send(message)

    for send in (other.send, wrapped):
        assert not protocol.write_head(send, 200, [(b"content-length", b"2")], LINES)
    assert cycle.transport.written == [] and not cycle.response_started


def test_a_bad_header_is_refused_as_uvicorn_refuses_it() -> None:
    protocol, cycle = protocol_with_cycle()
    with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
        protocol.write_head(cycle.send, 200, [(b"x-bad", b"a\r\nb")], LINES)
