"""The C template proof (``relaystack._textscan``) against a plain Python statement of what it proves.

An event is proven when its payload (up to the next ``\\n\\ndata: `` or the block's closing blank
line) is ``before + hole + after`` and ``"hole"`` is one JSON string both orjson and msgspec accept;
the walk stops at the first event that is not. Any block, any hole: the two must agree, or an
invalid byte could reach a client."""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaystack import text_template
from relaystack.text_template import BOUNDARY

scan = text_template.ACCEL
needs_c = pytest.mark.skipif(scan is None, reason="the C accelerator is not built (or RELAYSTACK_NO_ACCEL is set)")

BEFORE = b'{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"'
AFTER = b'"},"finish_reason":null}]}'


def is_json_string(hole: bytes) -> bool:
    quoted = b'"' + hole + b'"'
    try:
        ok = isinstance(orjson.loads(quoted), str)
    except orjson.JSONDecodeError:
        ok = False
    try:
        both = isinstance(msgspec.json.decode(quoted), str)
    except (msgspec.DecodeError, UnicodeDecodeError):
        both = False
    assert ok == both, f"orjson and msgspec disagree on {quoted!r}"
    return ok


def reference_run(block: bytes, start: int, before: bytes, after: bytes) -> tuple[int, int, bytes]:
    """What ``take_run`` must answer, event by event in Python."""
    events, at, holes = 0, start, []
    while at < len(block):
        found = block.find(BOUNDARY, at)
        if found >= 0:
            end, following = found, found + len(BOUNDARY)
        elif block.endswith(b"\n\n") and at <= len(block) - 2:
            end, following = len(block) - 2, len(block)
        else:
            break
        payload = block[at:end]
        shaped = len(payload) >= len(before) + len(after) and payload.startswith(before) and payload.endswith(after)
        hole = payload[len(before) : len(payload) - len(after)]
        if not (shaped and is_json_string(hole)):
            break
        events, at = events + 1, following
        if hole:
            holes.append(hole)
    return events, at, b"\n".join(holes)


HOLE_PIECES = [b"a", b"tok ", b"\\n", b'\\"', b"\\\\", b"\\u00e9", b"\\u00E9", b"\xc3\xa9", b"\xe2\x98\x83",
               b"\xf0\x9f\x99\x82", b"\\ud83d\\ude00", b"\\uD83D\\uDE00", b"\\/", b"\\b\\f\\r\\t", b"\x7f",
               b"\\u0000", b"\\", b'"', b'","', b",", b"\t", b"\n", b"\x00", b"\x1f", b"\xff", b"\xc3", b"\xc0\x80",
               b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\xaf", b"\\ud800", b"\\udc00", b"\\ud800\\u0041",
               b"\\ud800\\", b"\\u12", b"\\u12g4", b"\\x41", b"\\'", b"}", b"\n\ndata: "]  # fmt: skip
holes = st.one_of(st.lists(st.sampled_from(HOLE_PIECES), max_size=4).map(b"".join), st.binary(max_size=6),
                  st.text(max_size=4).map(lambda t: orjson.dumps(t)[1:-1]))  # fmt: skip


@st.composite
def events(draw: st.DrawFn, before: bytes, after: bytes) -> bytes:
    event = before + draw(holes) + after
    how = draw(st.sampled_from(["template"] * 6 + ["cut", "changed", "grown"]))
    if how == "cut":  # a truncated event
        return event[: draw(st.integers(0, len(event)))]
    if how in ("changed", "grown") and event:  # a byte outside the hole differs, or one more
        at = draw(st.sampled_from([0, len(before) - 1, len(event) - len(after), len(event) - 1]))
        byte = bytes([draw(st.integers(0, 255))])
        return event[:at] + byte + event[at + (how == "changed") :]
    return event


@st.composite
def blocks(draw: st.DrawFn) -> tuple[bytes, int, bytes, bytes]:
    if draw(st.booleans()):
        before, after = BEFORE, AFTER
    else:
        before = draw(st.binary(max_size=4)) + b'"'
        after = b'"' + draw(st.binary(max_size=4))
    payloads = draw(st.lists(events(before, after), max_size=12))
    end = draw(st.sampled_from([b"\n\n"] * 4 + [b"", b"\n", b"\n\ndata: "]))
    block = b"data: " + BOUNDARY.join(payloads) + end
    start = draw(st.sampled_from([6, 6, 6, 0, len(block)]))
    return block, start, before, after


@needs_c
@settings(max_examples=2000, deadline=None, database=None)
@given(case=blocks())
def test_the_c_proof_agrees_with_python_on_any_block(case: tuple[bytes, int, bytes, bytes]) -> None:
    assert scan is not None
    block, start, before, after = case
    expected = reference_run(block, start, before, after)
    assert scan.take_run(block, start, before, after) == expected
    assert scan.prove_run(block, start, before, after) == expected[:2]


@needs_c
@settings(max_examples=2000, deadline=None, database=None)
@given(hole=holes)
def test_a_hole_is_proven_exactly_when_it_is_one_json_string(hole: bytes) -> None:
    assert scan is not None
    block = b"data: " + BEFORE + hole + AFTER + b"\n\n"
    proven = scan.prove_run(block, 6, BEFORE, AFTER)[0] == 1
    assert proven == (b"\n\ndata: " not in hole and is_json_string(hole))


@needs_c
@pytest.mark.parametrize(("before", "after"), [(b"x", b'"'), (b'"', b"x"), (b"", b'"'), (b'"', b"")])
def test_a_template_whose_hole_is_not_between_quotes_is_refused(before: bytes, after: bytes) -> None:
    assert scan is not None
    with pytest.raises(ValueError, match="quote"):
        scan.prove_run(b"data: x\n\n", 6, before, after)


@needs_c
def test_a_start_outside_the_block_is_refused() -> None:
    assert scan is not None
    with pytest.raises(ValueError, match="outside"):
        scan.prove_run(b"data: x\n\n", 99, b'"', b'"')


@needs_c
@settings(max_examples=1000, deadline=None, database=None)
@given(pieces=st.lists(st.binary(min_size=1).filter(lambda piece: b"\n" not in piece), min_size=1, max_size=30),
       first=st.integers(0, 2**62), frame=st.lists(st.binary(max_size=40), min_size=3, max_size=3))  # fmt: skip
def test_numbered_pieces_are_each_piece_between_its_numbered_head_and_the_tail(
    pieces: list[bytes], first: int, frame: list[bytes]
) -> None:
    """What the Responses stream's text deltas are made of: one event per piece, numbered in order."""
    assert scan is not None
    head, middle, tail = frame
    expected = b"".join(head + str(first + k).encode() + middle + piece + tail for k, piece in enumerate(pieces))
    assert scan.number_pieces(b"\n".join(pieces), first, head, middle, tail) == expected
    assert scan.number_pieces(b"\n".join(pieces), first, head, middle, tail, middle + tail) == middle + tail + expected


@needs_c
def test_numbering_nothing_is_nothing_and_a_negative_start_is_refused() -> None:
    assert scan is not None
    assert scan.number_pieces(b"", 5, b"h", b"m", b"t") == b""
    assert scan.number_pieces(b"", 5, b"h", b"m", b"t", b"before") == b"before"
    with pytest.raises(ValueError, match="first"):
        scan.number_pieces(b"x", -1, b"h", b"m", b"t")


@pytest.mark.skipif(os.environ.get("RELAYSTACK_NO_ACCEL", "") not in ("", "0"), reason="RELAYSTACK_NO_ACCEL is set")
def test_the_install_built_and_loads_the_c_accelerator() -> None:
    """Where a C compiler is there, ``./scripts/install`` builds the module and relaystack loads it."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the pure-Python path is the one used")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no Python headers: the pure-Python path is the one used")
    assert text_template.accelerator() == "c"
