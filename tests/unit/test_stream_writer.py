"""The server's stream writer (api.asgi.STREAM_WRITER): a chunked response's head and chunks as
uvicorn's ``send`` writes them, pieces framed as one chunk in one vectored write, and a refusal
whenever uvicorn's path must run instead."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from support.protocol_double import Cycle, protocol_with_cycle

SSE = [(b"content-type", b"text/event-stream")]




def test_head_block_and_end_in_one_write_as_uvicorn_frames_them() -> None:
    protocol, cycle = protocol_with_cycle()
    assert protocol.write_stream(cycle.send, (200, SSE), [b"data: 1\n\n", b"data: [DONE]\n\n"], True)
    [parts] = cycle.transport.writes
    assert b"".join(parts) == (b"HTTP/1.1 200 OK\r\nserver: relaystack\r\ncontent-type: text/event-stream\r\n"
                               b"transfer-encoding: chunked\r\n\r\n"
                               b"17\r\ndata: 1\n\ndata: [DONE]\n\n\r\n0\r\n\r\n")
    assert cycle.response_complete and cycle.message_event.is_set() and not cycle.transport.closed


def test_chunks_after_the_head_and_the_end_alone() -> None:
    protocol, cycle = protocol_with_cycle(keep_alive=False)
    assert protocol.write_stream(cycle.send, (200, SSE), [b"data: 1\n\n"], False)
    assert protocol.write_stream(cycle.send, None, [b"data: 2\n\n"], False)
    assert not cycle.response_complete
    assert protocol.write_stream(cycle.send, None, [], True)
    written = [b"".join(parts) for parts in cycle.transport.writes]
    assert written[0].endswith(b"connection: close\r\ntransfer-encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
    assert written[1:] == [b"9\r\ndata: 2\n\n\r\n", b"0\r\n\r\n"]
    assert cycle.response_complete and cycle.transport.closed  # not kept alive: closed, as uvicorn does


@pytest.mark.parametrize("state", [
    {"disconnected": True}, {"flow": SimpleNamespace(write_paused=True)}, {"response_complete": True},
    {"access_log": True}, {"response_started": True}, {"scope": {"method": "HEAD"}},
])
def test_refused_when_uvicorns_own_path_must_run(state: dict[str, Any]) -> None:
    protocol, cycle = protocol_with_cycle(**state)
    assert not protocol.write_stream(cycle.send, (200, SSE), [b"data: 1\n\n"], False)
    assert cycle.transport.writes == []


@pytest.mark.parametrize("head", [(200, [*SSE, (b"content-length", b"9")]), (200, [(b"Transfer-Encoding", b"x")]),
                                  (204, SSE), (404, SSE)])
def test_refused_for_a_response_it_should_not_frame(head: tuple[int, list[tuple[bytes, bytes]]]) -> None:
    protocol, cycle = protocol_with_cycle()
    assert not protocol.write_stream(cycle.send, head, [b"data: 1\n\n"], False)
    assert cycle.transport.writes == [] and not cycle.response_started


def test_refused_after_a_head_it_did_not_frame_and_for_another_send() -> None:
    protocol, cycle = protocol_with_cycle(response_started=True, chunked_encoding=False)
    assert not protocol.write_stream(cycle.send, None, [b"x"], False)  # a content-length answer
    protocol, cycle = protocol_with_cycle()

    async def wrapped(message: Any) -> None:  # a middleware's send: it must see the messages
        await cycle.send(message)

    for send in (Cycle().send, wrapped):
        assert not protocol.write_stream(send, (200, SSE), [b"x"], True)
    assert cycle.transport.writes == [] and not cycle.response_started
