"""The relay's check of a stream's text events against a template (``chunk_shape.StreamCheck``):
it accepts exactly the blocks the careful check (a msgspec decode of each event) accepts, with the
same usage and finish reasons, and a malformed event in a template-shaped stretch fails the stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from relaystack.chunk_shape import Chunk, StreamCheck, decode_plain_block
from relaystack.errors import UpstreamProtocolError
from relaystack.providers.sse_relay import MALFORMED_EVENT, RelayRules, SSERelay
from relaystack.text_template import framed

CID = "chatcmpl-check"

pytestmark = pytest.mark.usefixtures("proof")  # every test with the C proof and the pure-Python one


class FakeResponse:
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def aclose(self) -> None:
        pass


def text_event(text: str, *, cid: str = CID, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": 1, "model": "up/m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}], **extra}


def with_hole(hole: bytes) -> bytes:
    """A text event with ``hole`` as the bytes inside its content string, whatever they are."""
    before, after = orjson.dumps(text_event("\x00HOLE\x00")).split(b"\\u0000HOLE\\u0000")
    return before + hole + after


def sans_content(chunk: Chunk) -> Chunk:
    choices = [msgspec.structs.replace(c, delta=msgspec.structs.replace(c.delta, content=None))
               if c.delta is not None else c for c in chunk.choices]  # fmt: skip
    return msgspec.structs.replace(chunk, choices=choices)


def assert_same_as_careful(blocks: list[bytes]) -> None:
    """Block by block, as the relay reads a stream: the template path and the careful one agree."""
    check = StreamCheck()
    for block in blocks:
        fast, careful = check.plain_block(block), decode_plain_block(block)
        assert (fast is None) == (careful is None), block
        if fast is None or careful is None:
            continue
        assert list(fast[0]) == careful[0]
        # a template event's chunk is the template's: the event's own but for its content
        assert list(map(sans_content, fast[1])) == list(map(sans_content, careful[1]))
        assert [c.usage for c in fast[1]] == [c.usage for c in careful[1]]


# what a hole can hold: valid escapes, and every way of not being one JSON string
HOLE_PIECES = [b"a", b"tok ", b"\\n", b'\\"', b"\\\\", b"\\u00e9", b"\xc3\xa9", b"\\ud83d\\ude00", b"\\/",
               b"\\", b'"', b'","', b',"', b",",
               b"\t", b"\n", b"\xff", b"\\ud800", b"\\x41", b"}", b"\x00", b"\n\ndata: "]
holes = st.lists(st.sampled_from(HOLE_PIECES), max_size=3).map(b"".join)
texts = st.one_of(st.text(max_size=5), st.sampled_from(['say "hi"', "ends in \\", "\u2603", ""]))
events = st.one_of(
    texts.map(lambda t: orjson.dumps(text_event(t))),  # the common case: the template's shape
    texts.map(lambda t: json.dumps(text_event(t)).encode()),  # another spelling
    holes.map(with_hole),  # the template's shape around any bytes (often: next to each other)
    holes.map(with_hole),
    holes.map(with_hole),
    st.just(orjson.dumps(text_event("odd", cid="other"))),
    st.just(orjson.dumps(text_event("u", usage={"total_tokens": 3}))),
    st.just(orjson.dumps({**text_event("f"), "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
    st.just(b'{"id":"x","choices":"abc"}'),
)


@example(first=[], stream=[with_hole(b"c\\"), with_hole(b',"e')], cuts=[])  # two halves of one string
@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(first=st.lists(events, max_size=3), stream=st.lists(events, max_size=40),
       cuts=st.lists(st.integers(min_value=1, max_value=45), max_size=5))  # fmt: skip
def test_the_template_path_accepts_exactly_what_the_careful_path_accepts(
    first: list[bytes], stream: list[bytes], cuts: list[int]
) -> None:
    payloads = [orjson.dumps(text_event(f"t{i} ")) for i in range(3)] + first + stream
    bounds = sorted({c for c in cuts if c < len(payloads)} | {0, len(payloads)})
    assert_same_as_careful([framed(payloads[a:b]) for a, b in pairwise(bounds)])


def test_a_long_stream_is_proven_against_its_template() -> None:
    check = StreamCheck()
    block = framed([orjson.dumps(text_event(f"tok{i} ")) for i in range(50)])
    assert check.plain_block(block) is not None
    assert check.template is not None
    assert check.plain_block(block) is not None  # and again once the template is known


@pytest.mark.parametrize("hole", [b"tab\there", b'a"b', b"\xff", b"\\ud800", b"\\x41", b'x","y', b"a\\"])
@pytest.mark.parametrize("where", [5, 60, 119])
def test_a_malformed_template_shaped_event_fails_the_stream(hole: bytes, where: int) -> None:
    payloads = [orjson.dumps(text_event(f"t{i} ")) for i in range(120)]
    payloads[where] = with_hole(hole)
    body = framed(payloads) + b"data: " + orjson.dumps({**text_event(""), "choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop"}]}) + b"\n\ndata: [DONE]\n\n"
    pieces = [body[:3000], body[3000:]]  # the template is learned in the first block

    async def run() -> list[bytes]:
        return [b async for b in SSERelay(FakeResponse(pieces), RelayRules("caller/m")).blocks()]

    with pytest.raises(UpstreamProtocolError) as failed:
        asyncio.run(run())
    assert failed.value.code == MALFORMED_EVENT


def test_an_upstream_whose_events_differ_beyond_the_text_is_still_checked() -> None:
    payloads = [orjson.dumps(text_event(f"t{i}", obfuscation=f"x{i}")) for i in range(40)]
    blocks = [framed(payloads[i : i + 8]) for i in range(0, 40, 8)]
    assert_same_as_careful(blocks)
    blocks[-1] = framed([*payloads[32:39], b'{"choices":[{"delta":{"content":5}}]}'])
    assert_same_as_careful(blocks)
