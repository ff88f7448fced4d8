"""The one SSE parser: events as the specification reads them, whatever the network split."""

from __future__ import annotations

import random

import pytest

from relaystack import sse


def split_everywhere(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(data):
        step = rng.randint(1, 9)
        pieces.append(data[i:i + step])
        i += step
    return pieces


STREAM = (b": comment\n\nevent: message\nid: 7\ndata: {\"a\":1}\n\ndata:{\"b\":2}\n\n"
          b"data: {\"c\":\ndata: 3}\n\ndata\ndata: x\n\ndatabase: no\n\ndata: [DONE]\n\n")
EXPECTED = [b'{"a":1}', b'{"b":2}', b'{"c":\n3}', b"\nx", b"[DONE]"]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_events_are_read_the_same_whatever_the_split_and_line_endings(newline: bytes) -> None:
    data = STREAM.replace(b"\n", newline)
    for seed in range(30):
        splitter = sse.EventSplitter()
        found: list[bytes] = []
        for piece in split_everywhere(data, seed):
            block = splitter.feed(piece)
            assert block == b"" or block.endswith(b"\n\n")
            assert b"\r" not in block
            found.extend(sse.payloads(block) if block else [])
        found.extend(sse.payloads(splitter.close()) if splitter.close() else [])
        assert found == EXPECTED, seed


def test_an_unterminated_last_event_still_counts() -> None:
    splitter = sse.EventSplitter()
    assert splitter.feed(b'data: {"a":1}\n\ndata: {"b"') == b'data: {"a":1}\n\n'
    assert sse.payloads(splitter.close()) == [b'{"b"']
    assert splitter.close() == b""


def test_the_plain_fast_path_only_takes_one_line_events() -> None:
    assert sse.plain_payloads(b"data: 1\n\ndata: 2\n\n") == [b"1", b"2"]
    assert sse.plain_payloads(b"data: 1\nid: 3\n\n") is None
    assert sse.plain_payloads(b": ping\n\ndata: 1\n\n") is None
    assert sse.payloads(b"data: 1\nid: 3\n\n") == [b"1"]


def test_first_payload_and_framing() -> None:
    assert sse.first_payload(b"data: 1\n\ndata: 2\n\n") == b"1"
    assert sse.first_payload(b": ping\n\ndata: 2\n\n") == b"2"
    assert sse.first_payload(b": ping\n\n") is None
    assert sse.frame_all([b"1", b"2"]) == b"data: 1\n\ndata: 2\n\n" and sse.frame_all([]) == b""
    assert sse.is_done(b" [DONE] ") and sse.frame(sse.DONE) == sse.DONE_EVENT


def test_the_collector_sees_done() -> None:
    collector = sse.SSECollector()
    for piece in split_everywhere(STREAM, 1):
        collector.feed(piece)
    collector.close()
    assert collector.payloads == EXPECTED[:-1] and collector.done
