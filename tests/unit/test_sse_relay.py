"""The byte relay: same output whatever the TCP segmentation, honest about how a stream ended."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping

import orjson
import pytest

from relaystack.errors import UpstreamError, UpstreamProtocolError
from relaystack.providers.sse_relay import RelayRules, relay_sse
from relaystack.providers.together import TogetherProvider


class FakeResponse:
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.status = 200
        self.headers: Mapping[str, str] = {}
        self.closed = False

    async def read(self) -> bytes:
        return b"".join(self.pieces)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def aclose(self) -> None:
        self.closed = True


def chunk(i: int, *, finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    event = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up/model",
             "choices": [{"index": 0, "delta": {"content": f"t{i} \"model\":\"x\""}, "finish_reason": finish}],
             "usage": usage}
    return b"data: " + orjson.dumps(event) + b"\n\n"


STREAM = b"".join(chunk(i) for i in range(20)) + chunk(20, finish="stop", usage={"total_tokens": 3}) + \
    b"data: [DONE]\n\n"


def segment(data: bytes, rng: random.Random) -> list[bytes]:
    pieces, i = [], 0
    while i < len(data):
        step = rng.randint(1, 64)
        pieces.append(data[i:i + step])
        i += step
    return pieces


async def collect(pieces: list[bytes], rules: RelayRules) -> bytes:
    return b"".join([block async for block in relay_sse(FakeResponse(pieces), rules)])  # type: ignore[arg-type]


def events(data: bytes) -> list[dict[str, object]]:
    return [orjson.loads(e[6:]) for e in data.split(b"\n\n") if e.startswith(b"data: ")]


async def test_output_is_the_same_for_every_segmentation() -> None:
    rules = RelayRules("caller/model")
    whole = await collect([STREAM], rules)
    for seed in range(50):
        assert await collect(segment(STREAM, random.Random(seed)), RelayRules("caller/model")) == whole
    parsed = events(whole)
    assert len(parsed) == 21
    assert all(e["model"] == "caller/model" for e in parsed)
    # a model field inside content is text, not a field: untouched
    assert parsed[0]["choices"][0]["delta"]["content"] == 't0 "model":"x"'  # type: ignore[index]


async def test_stream_that_stops_before_finishing_raises() -> None:
    with pytest.raises(UpstreamProtocolError):
        await collect([chunk(0), chunk(1)], RelayRules("m"))


async def test_finish_without_done_is_a_complete_stream() -> None:
    out = await collect([chunk(0), chunk(1, finish="length")], RelayRules("m"))
    assert len(events(out)) == 2


async def test_an_error_event_raises_with_the_upstream_message() -> None:
    error = b'data: {"error": {"message": "overloaded", "type": "server_error", "code": "503"}}\n\n'
    with pytest.raises(UpstreamError, match="overloaded"):
        await collect([chunk(0), error], RelayRules("m"))


async def test_malformed_event_raises() -> None:
    with pytest.raises(UpstreamProtocolError):
        await collect([chunk(0), b"data: {not json\n\n"], RelayRules("m"))


async def test_comments_crlf_and_event_lines_are_understood() -> None:
    data = b": keep-alive\r\n\r\n" + chunk(0).replace(b"\n\n", b"\r\n\r\n") + b"event: message\n" + chunk(
        1, finish="stop") + b"data: [DONE]\n\n"
    out = await collect(segment(data, random.Random(3)), RelayRules("m"))
    assert [e["model"] for e in events(out)] == ["m", "m"]


async def test_together_rules_hide_unasked_usage_and_split_asked_usage() -> None:
    body = {"model": "up/model", "messages": [], "stream": True}
    provider = TogetherProvider.__new__(TogetherProvider)
    call = type("Call", (), {"requested_model": "caller"})()
    hidden = events(await collect([STREAM], provider.relay_rules(body, call)))  # type: ignore[arg-type]
    assert all(e.get("usage") is None for e in hidden) and len(hidden) == 21
    asked = {**body, "stream_options": {"include_usage": True}}
    shown = events(await collect(segment(STREAM, random.Random(1)), provider.relay_rules(asked, call)))  # type: ignore[arg-type]
    assert shown[-1]["choices"] == [] and shown[-1]["usage"] == {"total_tokens": 3}
    assert shown[-2]["usage"] is None and len(shown) == 22
