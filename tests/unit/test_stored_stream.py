"""The packed form of a stored stream: exact by construction, whatever the events are."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaystack.chat_stream import assemble_chat_stream, first_event, is_stream_blob
from relaystack.storage._common import make_item
from relaystack.stored_stream import MAGIC, expand, first_payload_of_packed, pack_events, pack_sent, packed

BEFORE = b'{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"'  # noqa: E501
AFTER = b'"},"finish_reason":null}]}'
ROLE = b'{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}'  # noqa: E501
STOP = b'{"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'  # noqa: E501


def text_event(text: str) -> bytes:
    return BEFORE + json.dumps(text)[1:-1].encode() + AFTER


def framed(payloads: list[bytes]) -> bytes:
    return b"".join(b"data: " + payload + b"\n\n" for payload in payloads)


def test_a_long_text_stream_packs_to_a_fraction_and_expands_exactly() -> None:
    payloads = [ROLE, *(text_event(f"tok{i} ") for i in range(500)), STOP]
    events = framed(payloads)
    blob = packed(pack_events(events, payloads, (BEFORE, AFTER), (BEFORE, AFTER)), [events])
    assert blob.startswith(MAGIC) and len(blob) < len(events) / 10
    assert expand(blob) == events
    assert is_stream_blob(blob)
    assert first_event(blob) == json.loads(ROLE)
    assert assemble_chat_stream(blob, "m")["choices"][0]["message"]["content"] == "".join(  # type: ignore[index]
        f"tok{i} " for i in range(500))


def test_the_client_template_differs_from_the_upstream_one() -> None:
    """The relay swapped the model id: the packed run holds the template the client got."""
    payloads = [text_event(f"t{i}") for i in range(20)]
    sent = [p.replace(b'"model":"m"', b'"model":"caller"') for p in payloads]
    events = framed(sent)
    sent_template = (BEFORE.replace(b'"model":"m"', b'"model":"caller"'), AFTER)
    records = pack_events(events, payloads, (BEFORE, AFTER), sent_template)
    assert [r[:1] for r in records] == [b"T"]
    assert expand(packed(records, [events])) == events


def test_an_edit_inside_a_hole_falls_back_to_the_events_as_sent() -> None:
    payloads = [text_event(f"t{i}") for i in range(20)]
    sent = list(payloads)
    sent[10] = text_event("[REDACTED]")  # the client got another hole than the upstream sent
    events = framed(sent)
    records = pack_events(events, payloads, (BEFORE, AFTER), (BEFORE, AFTER))
    assert expand(packed(records, [events])) == events
    assert sum(r.startswith(b"T") for r in records) == 1  # one of the two runs around it is long enough


def test_too_short_a_stream_stays_in_the_form_older_rows_have() -> None:
    payloads = [ROLE, text_event("a"), STOP]
    events = framed(payloads)
    assert packed(pack_events(events, payloads, (BEFORE, AFTER), (BEFORE, AFTER)), [events]) == events


@pytest.mark.parametrize("damage", [b"T5 1 1 1\nab", b"X3\nabc", b"R99\nshort", b"T1 1 3 3\nab\nx", b"R"])
def test_a_damaged_blob_raises_and_its_row_is_shown_marked(damage: bytes) -> None:
    blob = MAGIC + damage
    with pytest.raises(ValueError):
        expand(blob)
    item = make_item("c-damaged", 7, blob, b"[]", "m")
    assert item["id"] == "c-damaged" and "relaystack_unreadable" in item


def test_first_payload_of_a_packed_run() -> None:
    payloads = [text_event(f"t{i}") for i in range(8)]
    events = framed(payloads)
    blob = packed(pack_events(events, payloads, (BEFORE, AFTER), (BEFORE, AFTER)), [events])
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


@settings(max_examples=300, deadline=None)
@given(_EVENTS, st.integers(min_value=0, max_value=39))
def test_packing_any_events_expands_to_exactly_those_events(payloads: list[bytes], edited: int) -> None:
    events = framed(payloads)
    template = (BEFORE, AFTER)
    assert restored(packed(pack_events(events, payloads, template, template), [events])) == events
    # the client got one event other than the upstream's: still exact, both ways of packing
    sent = list(payloads)
    sent[edited % len(sent)] = text_event("[REDACTED]")
    client = framed(sent)
    assert restored(packed(pack_events(client, payloads, template, template), [client])) == client
    assert restored(packed(pack_sent(client, template), [client])) == client
