"""The byte-level reading of plain text events (``text_runs``): it must translate exactly what the
careful path (every event parsed) translates, never take an event the careful path would not call
plain text, and never write a byte that is not JSON, whatever the upstream's bytes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaystack.errors import UpstreamProtocolError
from relaystack.frontends.chat_reader import ChatTurn
from relaystack.frontends.messages_output import MessagesStream
from relaystack.frontends.responses_stream import ResponsesStream
from relaystack.frontends.text_runs import TextRun, TextRuns, decode_holes, learn_template

Dumps = Callable[[Any], bytes]

pytestmark = pytest.mark.usefixtures("proof")  # every test with the C proof and the pure-Python one


def compact(event: Any) -> bytes:
    return orjson.dumps(event)


def spaced_ascii(event: Any) -> bytes:  # Python's json: spaces after separators, \u escapes
    return json.dumps(event).encode()


def text_event(text: str | None, *, role: bool = False, cid: str = "c1") -> dict[str, Any]:
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    delta["content"] = text
    return {"id": cid, "object": "chat.completion.chunk", "created": 7, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip


def finish_event() -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}}  # fmt: skip


def framed(payloads: list[bytes]) -> bytes:
    return b"".join(b"data: " + p + b"\n\n" for p in payloads)


def stream_of(texts: list[str], dumps: Dumps = compact) -> list[bytes]:
    """The payloads of a whole stream: a role event, one event per text, the finishing event."""
    return [dumps(text_event("", role=True)), *(dumps(text_event(t)) for t in texts), dumps(finish_event())]


def events_of(data: bytes) -> list[dict[str, Any]]:
    """Every event written, parsed (so any byte that is not JSON fails here), ids minted anew masked."""
    events = [orjson.loads(block.split(b"\ndata: ", 1)[1]) for block in data.strip().split(b"\n\n")]
    return json.loads(re.sub(r"(msg|fc)_[0-9a-f]{32}", r"\1_X", json.dumps(events)))


def responses_fast(blocks: list[bytes]) -> tuple[list[dict[str, Any]], ResponsesStream]:
    stream = ResponsesStream("resp_1", 7, {"model": "m"})
    data = stream.start() + b"".join(stream.feed_block(block) for block in blocks) + stream.finish()[0]
    return events_of(data), stream


def responses_careful(payloads: list[bytes]) -> tuple[list[dict[str, Any]], ResponsesStream]:
    stream = ResponsesStream("resp_1", 7, {"model": "m"})
    chunks = [orjson.loads(p) for p in payloads]
    return events_of(stream.start() + stream.feed(chunks) + stream.finish()[0]), stream


def messages_fast(blocks: list[bytes]) -> list[dict[str, Any]]:
    stream = MessagesStream("msg_1", "m", [])
    return events_of(stream.start() + b"".join(stream.feed_block(block) for block in blocks) + stream.finish())


def messages_careful(payloads: list[bytes]) -> list[dict[str, Any]]:
    stream = MessagesStream("msg_1", "m", [])
    return events_of(stream.start() + stream.feed([orjson.loads(p) for p in payloads]) + stream.finish())


def runs_of(blocks: list[bytes]) -> list[TextRun | dict[str, Any]]:
    turn = ChatTurn()
    reader = TextRuns(turn)
    items: list[TextRun | dict[str, Any]] = []
    for block in blocks:
        for item in reader.read(block):
            items.append(item)
            if isinstance(item, dict):
                turn.add(item)
    return items


def assert_same_translation(payloads: list[bytes], blocks: list[bytes]) -> None:
    (fast, stream), (careful, reference) = responses_fast(blocks), responses_careful(payloads)
    assert fast == careful
    for field in ("text_so_far", "finish_reason", "usage", "completion_id", "service_tier"):
        assert getattr(stream.turn, field) == getattr(reference.turn, field), field
    assert messages_fast(blocks) == messages_careful(payloads)


# -- the fast path is taken, and says the same -----------------------------------------------------
@pytest.mark.parametrize("dumps", [compact, spaced_ascii])
def test_a_long_stream_in_one_block_is_read_without_parsing_its_text_events(dumps: Dumps) -> None:
    texts = [f"tok{i} " for i in range(300)]
    payloads = stream_of(texts, dumps)
    items = runs_of([framed(payloads)])
    spliced = [piece for item in items if isinstance(item, TextRun) and item.raw is not None for piece in item.raw]
    assert len(spliced) >= 290  # all but the first few (read the careful way, to learn the template)
    assert "".join(t for item in items if isinstance(item, TextRun) for t in item.texts) == "".join(texts)
    assert_same_translation(payloads, [framed(payloads)])


def test_texts_ending_in_a_backslash_are_read_the_careful_way_alone_in_python(proof: str) -> None:
    """The C proof validates each hole on its own, so a hole ending in an escaped backslash is taken
    as any other; the pure-Python one reads such an event the careful way, alone."""
    texts = [f"t{i}" + ("\\" if i % 50 == 7 else "") for i in range(300)]
    payloads = stream_of(texts)
    items = runs_of([framed(payloads)])
    spliced = [piece for item in items if isinstance(item, TextRun) and item.raw is not None for piece in item.raw]
    assert len(spliced) >= 290
    assert any(piece.endswith(b"\\\\") for piece in spliced) == (proof == "c")
    assert_same_translation(payloads, [framed(payloads)])


def test_a_stream_of_one_event_per_block_is_read_without_parsing_its_text_events() -> None:
    payloads = stream_of([f"t{i}" for i in range(20)])
    items = runs_of([framed([p]) for p in payloads])
    assert sum(1 for item in items if isinstance(item, TextRun) and item.raw is not None) >= 15
    assert_same_translation(payloads, [framed([p]) for p in payloads])


TRICKY = ['say "hi"', "back\\slash", "ends in \\", '","', "naïve ☃ 🙂", "", "line\nbreak", "\t\x00\x1f",
          '"},"finish_reason":null', "\\u00e9", "/", "\\\\\"", '\\"', "\u2028"]  # fmt: skip


@pytest.mark.parametrize("dumps", [compact, spaced_ascii])
def test_tricky_texts_read_fast_say_what_the_careful_path_says(dumps: Dumps) -> None:
    payloads = stream_of([f"t{i}" for i in range(5)] + TRICKY * 3, dumps)
    assert_same_translation(payloads, [framed(payloads)])
    assert_same_translation(payloads, [framed(payloads[:7]), framed(payloads[7:20]), framed(payloads[20:])])


def test_events_that_differ_from_the_template_are_read_the_careful_way() -> None:
    tool = {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                         "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": None}]}  # fmt: skip
    reasoning = text_event("r")
    reasoning["choices"][0]["delta"]["reasoning_content"] = "thinking"
    logprobs = text_event("l")
    logprobs["choices"][0]["logprobs"] = {"content": [{"token": "l", "logprob": -0.5}]}
    second = text_event("second choice")  # the template's bytes but for the choice's index
    second["choices"][0]["index"] = 1
    odd = [compact(text_event("other id", cid="c2")), compact(second), compact(reasoning), compact(logprobs),
           compact(tool)]  # fmt: skip
    texts = [compact(text_event(f"t{i}")) for i in range(30)]
    payloads = [compact(text_event("", role=True)), *texts[:10], *odd[:4], *texts[10:20], odd[4], *texts[20:],
                compact(finish_event())]  # fmt: skip
    assert_same_translation(payloads, [framed(payloads)])
    assert_same_translation(payloads, [framed([p]) for p in payloads])


def test_an_event_that_differs_only_outside_its_hole_is_read_the_careful_way() -> None:
    """The template's bytes but for a few (choice 1, whose text is not the answer's; a finish
    reason of the same length as ``null``): first or last of a stretch of template events, or
    inside one, such an event is read the careful way."""
    second = text_event("2nd")
    second["choices"][0]["index"] = 1
    finishing = text_event("end")
    finishing["choices"][0]["finish_reason"] = "ab"
    odd_before, odd_after, other = compact(second), compact(finishing), compact(text_event("x", cid="c2222"))
    assert len(odd_before) == len(odd_after) == len(compact(text_event("2nd")))

    def texts(prefix: str) -> list[bytes]:
        return [compact(text_event(f"{prefix}{i}")) for i in range(5)]

    teach = [compact(text_event("", role=True)), *texts("t")]
    for rest in ([*texts("u"), odd_before, *texts("v")], [other, odd_before, *texts("w"), compact(finish_event())],
                 [*texts("w"), odd_after, other]):  # fmt: skip
        assert_same_translation([*teach, *rest], [framed(teach), framed(rest)])


def test_a_hole_that_smuggles_another_field_is_not_taken_as_text() -> None:
    """An event that is the template's bytes around more than one JSON string (here the hole holds
    ``a","reasoning_content":"b``) is valid JSON but not plain text: the careful path reads it."""
    template = compact(text_event("x"))
    before, after = template.split(b'"x"')
    smuggled = before + b'"a","reasoning_content":"b"' + after
    assert orjson.loads(smuggled)["choices"][0]["delta"]["reasoning_content"] == "b"
    payloads = [compact(text_event("", role=True)), *(compact(text_event(f"t{i}")) for i in range(10)), smuggled,
                *(compact(text_event(f"u{i}")) for i in range(10)), compact(finish_event())]  # fmt: skip
    items = runs_of([framed(payloads)])
    assert not any(isinstance(i, TextRun) and any("reasoning_content" in t for t in i.texts) for i in items)
    assert_same_translation(payloads, [framed(payloads)])


@pytest.mark.parametrize("holes", [[b"ends in a backslash\\"], [b"c\\", b',"e']])
def test_malformed_events_fail_as_on_the_careful_path(holes: list[bytes]) -> None:
    """Events that are the template's bytes around a hole that is not one JSON string (the relay
    refuses them; the translators must not depend on it)."""
    template = compact(text_event("x"))
    before, after = template.split(b'"x"')
    broken = [before + b'"' + hole + b'"' + after for hole in holes]
    payloads = [compact(text_event("", role=True)), *(compact(text_event(f"t{i}")) for i in range(10)), *broken,
                *(compact(text_event(f"u{i}")) for i in range(3)), compact(finish_event())]  # fmt: skip
    for stream in (ResponsesStream("resp_1", 7, {"model": "m"}), MessagesStream("msg_1", "m", [])):
        with pytest.raises(UpstreamProtocolError):
            stream.feed_block(framed(payloads))


def test_an_upstream_whose_events_differ_beyond_their_text_keeps_the_careful_path() -> None:
    def obfuscated(i: int) -> bytes:  # OpenAI pads every event with a random-length field
        return compact({**text_event(f"t{i}"), "obfuscation": "x" * (i % 7)})

    payloads = [compact(text_event("", role=True)), *(obfuscated(i) for i in range(60)), compact(finish_event())]
    blocks = [framed(payloads[i : i + 6]) for i in range(0, len(payloads), 6)]
    turn = ChatTurn()
    reader = TextRuns(turn)
    for block in blocks:
        for item in reader.read(block):
            assert not (isinstance(item, TextRun) and item.raw is not None and len(item.raw) > 1)
            if isinstance(item, dict):
                turn.add(item)
    assert reader.template is None
    assert_same_translation(payloads, blocks)


# -- the pieces ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("holes", "texts"),
    [
        ([b"a", b'b\\"c', b"x\\\\y", b"\\u00e9\\n"], ["a", 'b"c', "x\\y", "é\n"]),
        ([b"a\\"], None),  # an unpaired backslash escapes the closing quote
        ([b"c\\", b',"e'], None),  # ... and a quote in the next hole makes up the count
        ([b"a\\\\", b"b"], None),  # an escaped backslash at the end: valid, left to the careful path
        ([b"a\\\\\\", b"b"], None),
        ([b'a","b'], None),  # an unescaped quote: two strings, not one
        ([b'a\\\\"'], None),
        ([b"tab\there"], None),  # a control character must be escaped
        ([b"\xff"], None),  # not UTF-8
        ([b"\\ud800"], None),  # a lone surrogate
        ([b"\\x41"], None),  # not a JSON escape
    ],
)
def test_holes_decode_only_when_each_is_one_json_string(holes: list[bytes], texts: list[str] | None) -> None:
    assert decode_holes(holes) == texts


@pytest.mark.parametrize("text", ['say "hi"', "ends in \\", '\\"', 'x\\\\"y', "\u00e9\u2603"])
@pytest.mark.parametrize("dumps", [compact, spaced_ascii])
def test_the_template_is_learned_from_any_text(text: str, dumps: Dumps) -> None:
    event = text_event(text)
    template = learn_template(dumps(event), event, text)
    assert template is not None
    assert orjson.loads(template.before + b"new" + template.after) == text_event("new")


def test_the_template_is_the_deltas_content_wherever_another_content_key_sits() -> None:
    event = {"id": "c1", "meta": {"content": "tok"}, "choices": [{"index": 0, "delta": {"content": "tok"}}]}
    payload = orjson.dumps(event)
    template = learn_template(payload, event, "tok")
    assert template is not None
    assert orjson.loads(template.before + b"new" + template.after)["choices"][0]["delta"]["content"] == "new"
    assert orjson.loads(template.before + b"new" + template.after)["meta"]["content"] == "tok"


# -- any stream ---------------------------------------------------------------------------------------
texts_strategy = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(TRICKY)), max_size=40)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(texts=texts_strategy, cuts=st.lists(st.integers(min_value=1, max_value=45), max_size=6),
       odd_at=st.lists(st.integers(min_value=1, max_value=40), max_size=3), ascii_json=st.booleans())  # fmt: skip
def test_any_stream_cut_anywhere_translates_as_the_careful_path(
    texts: list[str], cuts: list[int], odd_at: list[int], ascii_json: bool
) -> None:
    dumps = spaced_ascii if ascii_json else compact
    payloads = stream_of(texts, dumps)
    for at in sorted(set(odd_at), reverse=True):  # events that differ from the template
        if at < len(payloads):
            payloads.insert(at, dumps(text_event("odd", cid="other")))
    bounds = sorted({c for c in cuts if c < len(payloads)} | {0, len(payloads)})
    blocks = [framed(payloads[a:b]) for a, b in pairwise(bounds)]
    assert_same_translation(payloads, blocks)
