"""The byte relay: same output whatever the TCP segmentation, honest about how a stream ended."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping

import orjson
import pytest

from relaystack.errors import UpstreamError, UpstreamProtocolError
from relaystack.providers.base import CallContext, ModelEntry, StreamReply
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.sse_relay import RelayRules, SSERelay
from relaystack.providers.together import TogetherProvider
from relaystack.redaction import Redactor
from relaystack.upstream.base import UpstreamRequest


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
    return b"".join([block async for block in SSERelay(FakeResponse(pieces), rules).blocks()])


def call_for(body: dict[str, object]) -> CallContext:
    call = CallContext(ModelEntry("caller", "together", "up/model"), "caller")
    options = body.get("stream_options")
    call.client_asked_usage = isinstance(options, dict) and options.get("include_usage") is True
    return call


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


@pytest.mark.parametrize("caller", ["up/model", "up/other", "caller/model"])  # same id, same length, another
async def test_every_event_gets_the_callers_model_and_nothing_else_changes(caller: str) -> None:
    relayed = events(await collect([STREAM], RelayRules(caller)))
    assert [e["model"] for e in relayed] == [caller] * 21
    assert relayed == [{**e, "model": caller} for e in events(STREAM.removesuffix(b"data: [DONE]\n\n"))]


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
    hidden = events(await collect([STREAM], provider.relay_rules(body, call_for(body))))
    assert all(e.get("usage") is None for e in hidden) and len(hidden) == 21
    asked = {**body, "stream_options": {"include_usage": True}}
    shown = events(await collect(segment(STREAM, random.Random(1)), provider.relay_rules(asked, call_for(asked))))
    assert shown[-1]["choices"] == [] and shown[-1]["usage"] == {"total_tokens": 3}
    assert shown[-2]["usage"] is None and len(shown) == 22


# -- every event checked ---------------------------------------------------------------------------

BAD = [
    b"data: {not json\n\n",
    b"data: null\n\n",
    b"data: [1, 2]\n\n",
    b'data: {"choices":"abc"}\n\n',
    b'data: {"choices":[{"index":0,"delta":"abc"}]}\n\n',
    b'data: {"choices":[{"index":[0],"delta":{}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":["a"]}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":"0"}]}}]}\n\n',
    b'data: {"choices":[],"usage":"many"}\n\n',
    b'data: {"choices":[{"index":0,"finish_reason":3}]}\n\n',
    b'data: {"choices":[\n\ndata: ]}\n\n',  # two halves of one object, sent as two events
    b'data: {"id":"x",\n"choices":[]}\n\n',  # a second line without "data:": a client reads "{"id":"x","
]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("position", [0, 100, 200])
async def test_a_malformed_event_anywhere_in_a_large_block_fails_before_any_of_it_is_sent(
    bad: bytes, position: int
) -> None:
    events = [chunk(i) for i in range(200)]
    events.insert(position, bad)
    stream = b"".join(events) + chunk(200, finish="stop") + b"data: [DONE]\n\n"
    sent: list[bytes] = []
    with pytest.raises(UpstreamProtocolError) as caught:
        async for block in SSERelay(FakeResponse([stream]), RelayRules("m")).blocks():
            sent.append(block)
    assert caught.value.code == "upstream_malformed_event"
    assert sent == []  # the block holding the bad event never reached the client


async def test_an_error_event_early_in_a_large_block_fails_the_stream_with_its_secrets_scrubbed() -> None:
    key = "sk-relaycanary-0123456789abcdef"
    error = {"error": {"message": f"bad key {key}", "type": f"auth_{key}", "code": key}}
    events = [chunk(i) for i in range(300)]  # ~60 KB after the error event
    events.insert(1, b"data: " + orjson.dumps(error) + b"\n\n")
    stream = b"".join(events) + chunk(300, finish="stop") + b"data: [DONE]\n\n"
    rules = RelayRules("m", redactor=Redactor([key]))
    with pytest.raises(UpstreamError) as caught:
        await collect([stream], rules)
    body = orjson.dumps(caught.value.to_dict())
    assert key.encode() not in body and b"bad key [REDACTED]" in body and b'"code":"[REDACTED]"' in body


async def test_a_key_echoed_in_an_event_is_scrubbed_from_the_relayed_bytes() -> None:
    key = "sk-relaycanary-0123456789abcdef"
    echo = chunk(1).replace(b"t1 ", key.encode() + b"/" + key.replace("-", "\\u002d").encode())
    out = await collect([chunk(0) + echo + chunk(2, finish="stop")], RelayRules("m", redactor=Redactor([key])))
    assert key.encode() not in out and b"[REDACTED]/" in out
    assert all(isinstance(e, dict) for e in events(out))


async def test_a_crlf_stream_is_relayed_as_it_arrives_not_at_its_end() -> None:
    pieces = [chunk(i).replace(b"\n", b"\r\n") for i in range(5)] + [chunk(5, finish="stop").replace(b"\n", b"\r\n")]
    response = FakeResponse(pieces)
    relay = SSERelay(response, RelayRules("m")).blocks()
    first = await relay.__anext__()
    assert first == chunk(0).replace(b'"up/model"', b'"m"')
    rest = [block async for block in relay]
    assert len(rest) == 5


async def test_a_finish_followed_by_more_content_then_the_end_is_incomplete() -> None:
    with pytest.raises(UpstreamProtocolError, match="ended before it finished"):
        await collect([chunk(0), chunk(1, finish="stop"), chunk(2)], RelayRules("m"))


# -- usage: exposed, and hidden from a client that did not ask -----------------------------------

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
OPENAI_STREAM = (chunk(0) + chunk(1, finish="stop")
                 + b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up/model","choices":[],'
                 + b'"usage":' + orjson.dumps(USAGE) + b"}\n\ndata: [DONE]\n\n")


async def test_the_stream_usage_is_exposed_and_passed_on_by_default() -> None:
    relay = SSERelay(FakeResponse([OPENAI_STREAM]), RelayRules("m"))
    out = b"".join([block async for block in relay.blocks()])
    assert events(out)[-1]["usage"] == USAGE and relay.usage == USAGE
    assert relay.hidden_events() == b""


async def test_strip_usage_takes_the_usage_chunk_out_of_the_clients_stream_and_keeps_it() -> None:
    for seed in range(5):
        relay = SSERelay(FakeResponse(segment(OPENAI_STREAM, random.Random(seed))), RelayRules("m", strip_usage=True))
        out = b"".join([block async for block in relay.blocks()])
        assert [e.get("usage") for e in events(out)] == [None, None]
        assert relay.usage == USAGE
        assert events(relay.hidden_events()) == [
            {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": USAGE}
        ]


class SeamDouble:
    """An upstream that answers every request with one SSE body and keeps what it was sent."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent: list[dict[str, object]] = []

    async def send(self, request: UpstreamRequest) -> FakeResponse:
        self.sent.append(orjson.loads(request.body or b"{}"))
        response = FakeResponse([self.body])
        response.headers = {"Content-Type": "text/event-stream"}
        return response

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("wanted", "client_asks", "asked", "client_sees_usage"), [
    (False, False, False, True),  # off by default: the body is the client's (this upstream sends usage anyway)
    (True, False, True, False),  # the gateway wants usage: asked upstream, hidden from the client
    (True, True, True, True),  # the client asked itself: nothing changes
    (False, True, True, True),
])
async def test_a_provider_asks_for_stream_usage_when_the_gateway_wants_it(
    wanted: bool, client_asks: bool, asked: bool, client_sees_usage: bool
) -> None:
    seam = SeamDouble(OPENAI_STREAM)
    provider = OpenAICompatProvider("p", {"base_url": "http://upstream.invalid/v1", "api_key": "k" * 12}, seam)
    call = CallContext(ModelEntry("p/up", "p", "up/model"), "p/up", usage_wanted=wanted)
    body: dict[str, object] = {"model": "p/up", "messages": [], "stream": True}
    if client_asks:
        body["stream_options"] = {"include_usage": True}
    reply = await provider.chat_completion(body, call)
    assert isinstance(reply, StreamReply)
    out = b"".join([block async for block in reply.blocks])
    options = seam.sent[0].get("stream_options")
    assert (isinstance(options, dict) and options.get("include_usage") is True) == asked
    assert any(e.get("usage") for e in events(out)) == client_sees_usage
    assert reply.usage == USAGE


async def test_a_provider_that_cannot_be_asked_for_usage_keeps_the_clients_body() -> None:
    class NoStreamUsage(OpenAICompatProvider):
        supports_stream_usage = False

    seam = SeamDouble(OPENAI_STREAM)
    provider = NoStreamUsage("p", {"base_url": "http://upstream.invalid/v1", "api_key": "k" * 12}, seam)
    call = CallContext(ModelEntry("p/up", "p", "up/model"), "p/up", usage_wanted=True)
    reply = await provider.chat_completion({"model": "p/up", "messages": [], "stream": True}, call)
    assert isinstance(reply, StreamReply)
    [block async for block in reply.blocks]
    assert "stream_options" not in seam.sent[0]


@pytest.mark.parametrize("split", ["one block", "random pieces", "one event a block"])
@pytest.mark.parametrize("caller", ["up/model", "caller-model"])
async def test_the_stored_form_is_what_the_client_got_packed_or_not(split: str, caller: str) -> None:
    """``stored_form`` reads back (expanded) byte for byte the blocks the client got, however the
    upstream's bytes were cut, with the model id swapped or not and a secret redacted in one text."""
    from relaystack import text_template
    from relaystack.stored_stream import expand, is_packed

    stream = STREAM.replace(b"t7 ", b"t7 sk-secret-canary ")
    if split == "one block":
        pieces = [stream]
    elif split == "random pieces":
        pieces = segment(stream, random.Random(7))
    else:
        pieces = [event + b"\n\n" for event in stream.split(b"\n\n") if event]
    relay = SSERelay(FakeResponse(pieces), RelayRules(caller, redactor=Redactor({"sk-secret-canary"})))
    sent = b"".join([block async for block in relay.blocks()])
    stored = relay.stored_form(b"")  # no hidden events
    assert b"sk-secret-canary" not in sent and b"sk-secret-canary" not in stored
    assert (expand(stored) if is_packed(stored) else stored) == sent
    assert is_packed(stored) == (text_template.ACCEL is not None)


@pytest.mark.usefixtures("proof")
@pytest.mark.parametrize("caller", ["up/model", "up/other"])  # the count decides: the same id, the same length
async def test_an_event_of_another_model_among_proven_text_events_still_gets_the_callers_id(caller: str) -> None:
    """The model-id count skips the stretches the check proved (the template's field once per event,
    none in a JSON string): an event outside them that names another model is still counted."""
    other = chunk(7).replace(b'"model":"up/model"', b'"model":"up/zzzzz"')
    stream = b"".join(chunk(i) if i != 7 else other for i in range(20)) + chunk(20, finish="stop") + \
        b"data: [DONE]\n\n"
    relayed = events(await collect([stream], RelayRules(caller)))
    assert [e["model"] for e in relayed] == [caller] * 21
    assert relayed[3]["choices"][0]["delta"]["content"] == 't3 "model":"x"'  # type: ignore[index]


def _usage_streams() -> dict[str, bytes]:
    text = b"".join(chunk(i) for i in range(30))
    every = b"".join(chunk(i, usage={"total_tokens": i}) for i in range(30))  # Gemini: usage on every chunk
    return {
        "openai": text + OPENAI_STREAM,  # a usage chunk of its own after the finishing one
        "together": text + chunk(30, finish="stop", usage=USAGE) + b"data: [DONE]\n\n",  # on the finishing one
        "every": every + chunk(30, finish="stop", usage=USAGE) + b"data: [DONE]\n\n",
        "mid-block": text + chunk(30, usage=USAGE) + text + chunk(31, finish="stop") + b"data: [DONE]\n\n",
    }


@pytest.mark.parametrize("stream", list(_usage_streams()))
@pytest.mark.parametrize("rules", [{"strip_usage": True}, {"split_usage": True}])
@pytest.mark.parametrize("caller", ["up/model", "caller/model"])
async def test_usage_edited_in_place_is_what_the_payload_by_payload_edit_gives(
        stream: str, rules: dict[str, bool], caller: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the C walk the events carrying usage are edited and spliced into the block; without it
    every payload is split and re-framed. Same bytes, same hidden events, same usage."""
    from relaystack import text_template

    if text_template.ACCEL is None:
        pytest.skip("the C accelerator is not built")
    data = _usage_streams()[stream]
    for pieces in ([data], segment(data, random.Random(3)), [data[: len(data) // 2], data[len(data) // 2 :]]):
        outcomes = []
        for accel in (text_template.ACCEL, None):
            monkeypatch.setattr(text_template, "ACCEL", accel)
            relay = SSERelay(FakeResponse(pieces), RelayRules(caller, **rules))
            out = b"".join([block async for block in relay.blocks()])
            outcomes.append((out, relay.hidden_events(), relay.usage))
        assert outcomes[0] == outcomes[1]
        assert all(e["model"] == caller for e in events(outcomes[0][0]))
