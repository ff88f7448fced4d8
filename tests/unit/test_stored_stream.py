"""The packed form of a stored stream: exact by construction, whatever the events are."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaystack import text_template
from relaystack.chat_stream import assemble_chat_stream, first_event, is_stream_blob
from relaystack.storage._common import make_item
from relaystack.stored_stream import MAGIC, expand, first_payload_of_packed, pack

needs_c = pytest.mark.skipif(text_template.ACCEL is None, reason="packing needs the C accelerator")

BEFORE = b'{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"'  # noqa: E501
AFTER = b'"},"finish_reason":null}]}'
ROLE = b'{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}'  # noqa: E501
STOP = b'{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'  # noqa: E501


def text_event(text: str) -> bytes:
    return BEFORE + json.dumps(text)[1:-1].encode() + AFTER


def framed(payloads: list[bytes]) -> bytes:
    return b"".join(b"data: " + payload + b"\n\n" for payload in payloads)


@needs_c
def test_a_long_text_stream_packs_to_a_fraction_and_expands_exactly() -> None:
    payloads = [ROLE, *(text_event(f"tok{i} ") for i in range(500)), STOP]
    events = framed(payloads)
    blob = pack(events, (BEFORE, AFTER))
    assert blob.startswith(MAGIC) and len(blob) < len(events) / 10
    assert expand(blob) == events
    assert is_stream_blob(blob)
    assert first_event(blob) == json.loads(ROLE)
    assert assemble_chat_stream(blob, "m")["choices"][0]["message"]["content"] == "".join(  # type: ignore[index]
        f"tok{i} " for i in range(500))


@needs_c
def test_the_client_template_is_the_one_packed() -> None:
    """The relay swapped the model id: the events are packed with the template the client got."""
    sent = [text_event(f"t{i}").replace(b'"model":"m"', b'"model":"caller"') for i in range(20)]
    events = framed(sent)
    assert pack(events, (BEFORE, AFTER)) == events  # the upstream's template is not in these bytes
    blob = pack(events, (BEFORE.replace(b'"model":"m"', b'"model":"caller"'), AFTER))
    assert blob.startswith(MAGIC) and expand(blob) == events


@needs_c
def test_an_event_between_stretches_stays_as_sent() -> None:
    payloads = [*(text_event(f"t{i}") for i in range(10)), ROLE, *(text_event(f"u{i}") for i in range(10))]
    events = framed(payloads)
    blob = pack(events, (BEFORE, AFTER))
    role = framed([ROLE])
    assert blob.count(b"R%d\n" % len(role) + role) == 1 and len(blob) < len(events) / 3
    assert expand(blob) == events


@needs_c
def test_a_stretch_with_empty_texts_packs_and_expands_exactly() -> None:
    """Every hole is kept, empty ones too: an empty text is an empty line among the holes."""
    events = framed([text_event(f"t{i}") if i not in (0, 5, 6) else text_event("") for i in range(8)])
    blob = pack(events, (BEFORE, AFTER))
    assert blob.startswith(MAGIC) and b"T" in blob
    assert expand(blob) == events


def test_too_short_a_stream_stays_in_the_form_older_rows_have() -> None:
    events = framed([ROLE, text_event("a"), STOP])
    assert pack(events, (BEFORE, AFTER)) == events


@pytest.mark.parametrize("damage", [b"T5 1 1 1\nab", b"X3\nabc", b"R99\nshort", b"T1 1 3 3\nab\nx", b"R"])
def test_a_damaged_blob_raises_and_its_row_is_shown_marked(damage: bytes) -> None:
    blob = MAGIC + damage
    with pytest.raises(ValueError):
        expand(blob)
    item = make_item("c-damaged", 7, blob, b"[]", "m")
    assert item["id"] == "c-damaged" and "relaystack_unreadable" in item


@needs_c
def test_first_payload_of_a_packed_run() -> None:
    payloads = [text_event(f"t{i}") for i in range(8)]
    blob = pack(framed(payloads), (BEFORE, AFTER))
    assert first_payload_of_packed(blob) == payloads[0]


# any event: a template one with any text, or another chunk (a tool call, a usage chunk)
_EVENTS = st.lists(
    st.one_of(
        st.text(max_size=12).map(text_event),
        st.sampled_from([ROLE, STOP, b'{"id":"c1","choices":[],"usage":{"total_tokens":3}}']),
        st.text(max_size=6).map(lambda t: BEFORE + json.dumps(t)[1:-1].encode() + b'"},"x":1}]}'),
    ),
    min_size=1, max_size=40,
)


def restored(blob: bytes) -> bytes:
    return expand(blob) if blob.startswith(MAGIC) else blob


@needs_c
@settings(max_examples=300, deadline=None)
@given(_EVENTS)
def test_packing_any_events_expands_to_exactly_those_events(payloads: list[bytes]) -> None:
    events = framed(payloads)
    assert restored(pack(events, (BEFORE, AFTER))) == events
