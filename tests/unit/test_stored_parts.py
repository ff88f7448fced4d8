"""A relayed stream's stored form, taken as its blocks go by: whatever the stream, the cuts, the
edits, it reads back byte for byte what the client got, and the plain case needs no second walk."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from unittest.mock import patch

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaystack import stored_stream, text_template
from relaystack.providers.sse_relay import RelayRules, SSERelay
from relaystack.redaction import Redactor
from relaystack.stored_stream import expand, is_packed
from support.inprocess import PiecesResponse

needs_c = pytest.mark.skipif(text_template.ACCEL is None, reason="the stored parts are taken by the C walk")

SECRET = "sk-canary-0123456789"
TOGETHER_FIX = ((b'"object":"completion.chunk"', b'"object":"text_completion"'),)


def event(delta: dict[str, object], *, model: str = "up/model", finish: str | None = None,
          obj: str = "chat.completion.chunk", usage: dict[str, int] | None = None) -> bytes:
    chunk = {"id": "c1", "object": obj, "created": 1, "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        chunk["usage"] = usage
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_of(texts: list[str], *, tool_at: int | None = None, obj: str = "chat.completion.chunk",
              usage: bool = False) -> bytes:
    events = [event({"role": "assistant", "content": ""}, obj=obj)]
    for i, text in enumerate(texts):
        if i == tool_at:
            events.append(event({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                 "function": {"name": "f", "arguments": "{}"}}]}, obj=obj))
        events.append(event({"content": text}, obj=obj))
    events.append(event({}, finish="stop", obj=obj, usage={"total_tokens": 3} if usage else None))
    return b"".join(events) + b"data: [DONE]\n\n"


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


async def relayed(pieces: list[bytes], rules: RelayRules) -> tuple[bytes, bytes]:
    relay = SSERelay(PiecesResponse(200, pieces), rules)
    sent = b"".join([block async for block in relay.blocks()])
    hidden = relay.hidden_events()
    return sent + hidden, relay.stored_form(hidden)


def read_back(stored: bytes) -> bytes:
    return expand(stored) if is_packed(stored) else stored


TEXTS = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(["", " ", "\n", '"model":"up/model"', "é🙂", SECRET,
                                                                    '\\"', "completion.chunk"])),
                 min_size=0, max_size=40)


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12),
       caller=st.sampled_from(["up/model", "up/other", "c", "a-much-longer-caller-model-id"]),
       tool_at=st.one_of(st.none(), st.integers(min_value=0, max_value=40)),
       together=st.booleans(), strip_usage=st.booleans())
def test_the_stored_form_reads_back_what_the_client_got(texts: list[str], cuts: list[int], caller: str,
                                                        tool_at: int | None, together: bool,
                                                        strip_usage: bool) -> None:
    data = stream_of(texts, tool_at=tool_at, obj="completion.chunk" if together else "chat.completion.chunk",
                     usage=True)
    rules = RelayRules(caller, replacements=TOGETHER_FIX if together else (), strip_usage=strip_usage,
                       redactor=Redactor({SECRET}))
    plain = not together and not any(SECRET in text for text in texts)
    # with no edit but the model id, the parts come from the check's walk: no second walk
    walk_again = patch.object(stored_stream, "parts_of", side_effect=AssertionError("walked again")) if plain \
        else contextlib.nullcontext()
    with walk_again:
        sent, stored = asyncio.run(relayed(cut(data, cuts), rules))
    assert read_back(stored) == sent
    assert SECRET.encode() not in stored
    if len(texts) >= 8 and all(texts) and tool_at is None:
        assert is_packed(stored)


@needs_c
@pytest.mark.parametrize("caller", ["up/model", "a-longer-caller-id"])
@pytest.mark.parametrize("read", [65536, 4096, 1])
def test_a_plain_stream_is_packed_from_the_check_without_a_second_walk(
    caller: str, read: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No secret, no provider replacement: the parts come from the check's own walk, one ``T`` record
    for the whole text however the upstream's bytes were cut (stretches of neighbouring blocks merge)."""

    def no_second_walk(*_: object) -> list[stored_stream.Part]:
        raise AssertionError("the stream was walked again")

    monkeypatch.setattr(stored_stream, "parts_of", no_second_walk)
    texts = [f"tok{i} " for i in range(300)]
    data = stream_of(texts)
    pieces = [data[i:i + read] for i in range(0, len(data), read)]
    sent, stored = asyncio.run(relayed(pieces, RelayRules(caller, redactor=Redactor({SECRET}))))
    assert read_back(stored) == sent
    assert stored.count(b"\nT") == 1 and len(stored) < len(sent) / 5


@needs_c
def test_a_block_with_a_secret_is_walked_again_in_the_bytes_sent() -> None:
    texts = [f"tok{i} " for i in range(40)]
    texts[20] = f"leaked {SECRET}"
    sent, stored = asyncio.run(relayed([stream_of(texts)], RelayRules("c", redactor=Redactor({SECRET}))))
    assert SECRET.encode() not in sent and SECRET.encode() not in stored
    assert is_packed(stored) and read_back(stored) == sent


def test_a_stream_nobody_stores_keeps_nothing() -> None:
    async def run() -> SSERelay:
        relay = SSERelay(PiecesResponse(200, [stream_of([f"t{i}" for i in range(50)])]), RelayRules("c"))
        relay.forgo_stored()
        [block async for block in relay.blocks()]
        return relay

    relay = asyncio.run(run())
    with pytest.raises(RuntimeError, match="forgo_stored"):
        relay.stored_form(b"")


@pytest.mark.parametrize("caller", ["up/other", "c"])
def test_a_block_whose_first_model_field_is_not_a_string_is_stored_as_sent(caller: str) -> None:
    """The relay learns the upstream's field from a block's first ``"model"``; a first one that is not
    a string leaves that block unswapped, and its stored parts must not swap it either."""
    first = event({"role": "assistant", "content": ""}).replace(b'"model":"up/model"', b'"model":null')
    data = first + stream_of([f"t{i}" for i in range(30)]).split(b"\n\n", 1)[1]
    sent, stored = asyncio.run(relayed([data], RelayRules(caller)))
    assert read_back(stored) == sent
