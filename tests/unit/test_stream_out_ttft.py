"""When a stream's time to first token is taken: at the first block of a chat stream, at the first
block that carries the answer for a front-end whose opening events come first, and once only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from relaystack import telemetry
from relaystack.api.stream_out import StreamOut
from relaystack.context import RequestContext


class _Recorder(telemetry.Telemetry):
    def __init__(self) -> None:
        self.first_tokens: list[float] = []

    def first_token(self, ctx: RequestContext, seconds: float) -> None:
        self.first_tokens.append(seconds)


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    before = telemetry.current()
    recorded = _Recorder()
    telemetry.install(recorded)
    try:
        yield recorded
    finally:
        telemetry.install(before)


async def _ignore(message: Any) -> None:
    return None


def _out(**options: bool) -> StreamOut:
    return StreamOut(_ignore, {}, RequestContext("chat"), lambda ctx: [], **options)


async def test_a_chat_stream_is_timed_at_its_first_block_once(recorder: _Recorder) -> None:
    out = _out()
    await out.block(b"data: {}\n\n")
    await out.block(b"data: {}\n\n")
    await out.end(b"data: {}\n\n", b"data: [DONE]\n\n")
    assert len(recorder.first_tokens) == 1


async def test_opening_events_are_not_the_first_token(recorder: _Recorder) -> None:
    out = _out(first_block_is_first_token=False)
    await out.block(b"event: response.created\n\n")
    assert recorder.first_tokens == []
    out.first_token()
    await out.block(b"event: response.output_text.delta\n\n")
    out.first_token()
    assert len(recorder.first_tokens) == 1


async def test_an_answer_held_to_the_end_is_timed_there(recorder: _Recorder) -> None:
    out = _out(first_block_is_first_token=False)
    await out.block(b"event: response.created\n\n")
    await out.end(b"event: response.output_text.delta\n\n", b"event: response.completed\n\n")
    assert len(recorder.first_tokens) == 1
