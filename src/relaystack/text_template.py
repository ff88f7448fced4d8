"""Stretches of streamed events that differ only in their text, proven so at byte level.

Most of a long stream is plain text: events whose only news is ``delta.content`` of choice 0, and
an upstream writes them all alike but for that string (same id, model, fields, order). Once one
such event has been read the careful way (parsed and checked), its bytes around the content
string are kept as a ``Template``: ``find_template`` finds the string, and keeps the template only
if the caller's check accepts it with another string in the hole (so the hole is the delta's
content, wherever the upstream puts it). Then a block is split at event boundaries and a stretch
of events that are the template with some string in the hole is read without parsing an event:
one comparison of the stretch with the template joined around the holes proves every event's
bytes (``template_run``), and one ``orjson.loads`` of the holes as a JSON array of strings (one
string per hole, none ending in a backslash) proves each hole is exactly one JSON string and
decodes them all (``decode_holes``). Such an event is the checked one with another JSON string
as its content: valid wherever the checked one was.

Two readers use it: the relay's check of every event (``chunk_shape.StreamCheck``) and the front-ends'
translation (``frontends/text_runs.py``). Anything the proof does not cover (an event that
differs from the template in any byte outside the hole, a hole that is not one JSON string, a
hole ending in a backslash) is left to the reader's careful path. Pure functions on bytes,
importable from any layer.

The same proof has a C implementation, ``relaystack._textscan`` (built by ``hatch_build.py`` when a
compiler is there): it walks a block from an event's start, proving events one after the other
(template bytes compared in place, each hole validated as a JSON string's inside) and stops at the
first event that is not one, with no Python object per event. ``ACCEL`` is that module, or None
(not built, or ``RELAYSTACK_NO_ACCEL=1``): the readers then use the pure-Python functions here,
which are the reference the C module is tested against.
"""

from __future__ import annotations

import logging
import operator
import os
from collections.abc import Callable, Iterator
from types import ModuleType

import orjson

__all__ = ["ACCEL", "BOUNDARY", "PROBE", "Template", "accelerator", "decode_holes", "decoded_runs", "event_at",
           "find_template", "framed", "split_events", "stretches"]

_log = logging.getLogger(__name__)


def _load_accelerator() -> ModuleType | None:
    """The C module, unless it was not built or ``RELAYSTACK_NO_ACCEL`` asks for the pure-Python path."""
    if os.environ.get("RELAYSTACK_NO_ACCEL", "") not in ("", "0"):
        _log.debug("stream template proof: pure Python (RELAYSTACK_NO_ACCEL is set)")
        return None
    try:
        from relaystack import _textscan
    except ImportError:
        _log.debug("stream template proof: pure Python (the C accelerator is not built)")
        return None
    _log.debug("stream template proof: C (relaystack._textscan)")
    return _textscan


ACCEL = _load_accelerator()


def accelerator() -> str:
    """Which implementation proves template events: ``"c"`` or ``"python"``."""
    return "python" if ACCEL is None else "c"

BOUNDARY = b"\n\ndata: "  # between two events of a block of one-line events
_DATA = b"data: "
# the string a candidate template is checked with, in its hole
PROBE = "relaystack template probe"
_PROBE_BYTES = PROBE.encode()
_BACKSLASH = ord("\\")


class Template:
    """A plain text event's payload around its content string: ``before + hole + after``."""

    __slots__ = ("after", "before", "between", "hole_of")

    def __init__(self, before: bytes, after: bytes) -> None:
        self.before = before
        self.after = after
        # what separates the holes of two template events in a row in a block
        self.between = after + BOUNDARY + before
        # a template event's payload -> its hole (a C call per event when mapped over a list)
        self.hole_of = operator.itemgetter(slice(len(before), -len(after)))

    def probed(self) -> bytes:
        """The template with ``PROBE`` in its hole."""
        return self.before + _PROBE_BYTES + self.after

    def __repr__(self) -> str:
        return f"Template({self.before!r}, {self.after!r})"


def find_template(payload: bytes, text: str, fits: Callable[[Template], bool]) -> Template | None:
    """The template of ``payload`` (a one-line event whose content says ``text``), or None.

    The hole is the value of a ``"content"`` key whose string decodes to ``text``; the first such
    candidate that ``fits`` accepts (the caller parses ``template.probed()`` and checks the probe
    landed in the delta's content and nothing else changed) is the template."""
    if not payload or b"\n" in payload:
        return None
    start = 0
    while (key := payload.find(b'"content"', start)) >= 0:
        start = key + 9
        hole = _string_after_colon(payload, start)
        if hole is None:
            continue
        begin, end = hole
        if begin == 0 or end == len(payload):
            continue
        template = Template(payload[:begin], payload[end:])
        if _decodes_to(payload[begin:end], text) and fits(template):
            return template
    return None


def _string_after_colon(payload: bytes, at: int) -> tuple[int, int] | None:
    """(start, end) of the string's inside in ``: "..."`` at ``at`` (JSON whitespace allowed)."""
    at = _skip_space(payload, at)
    if payload[at : at + 1] != b":":
        return None
    at = _skip_space(payload, at + 1)
    if payload[at : at + 1] != b'"':
        return None
    end = at + 1
    while (end := payload.find(b'"', end)) >= 0:
        escape = end
        while payload[escape - 1] == _BACKSLASH:
            escape -= 1
        if (end - escape) % 2 == 0:  # an even run of backslashes before it: this quote ends the string
            return at + 1, end
        end += 1
    return None


def _skip_space(payload: bytes, at: int) -> int:
    while payload[at : at + 1] in (b" ", b"\t", b"\r"):
        at += 1
    return at


def _decodes_to(hole: bytes, text: str) -> bool:
    try:
        return bool(orjson.loads(b'"' + hole + b'"') == text)
    except orjson.JSONDecodeError:
        return False


def decode_holes(holes: list[bytes]) -> list[str] | None:
    """Each hole's string, if every hole is exactly the inside of one JSON string; else None.

    Joined with ``","`` and bracketed as ``["..."]`` they are parsed as one JSON array. When no
    hole ends in a backslash, every quote the joining adds is unescaped, so the array holds
    ``n + u/2`` strings for ``n`` holes with ``u`` unescaped quotes among them: exactly ``n``
    strings means no hole holds an unescaped quote, so each string is one hole, decoded (and
    ``orjson`` checked its escapes, control characters and UTF-8)."""
    joined = b'","'.join(holes)
    if b'\\","' in joined or joined.endswith(b"\\"):  # a hole that ends in a backslash: the careful path
        return None
    try:
        texts = orjson.loads(b'["' + joined + b'"]')
    except orjson.JSONDecodeError:
        return None
    return texts if isinstance(texts, list) and len(texts) == len(holes) else None


def decoded_runs(holes: list[bytes]) -> list[tuple[int, int, list[str] | None]]:
    """(first, last, texts) over ``holes``: runs decoded by ``decode_holes``, and (texts None) what
    it refuses. A hole that ends in a backslash (a text ending in one) is refused alone, not with
    its whole run; a run refused for anything else is refused whole (it is malformed)."""
    texts = decode_holes(holes)
    if texts is not None:
        return [(0, len(holes), texts)]
    cuts = [index for index, hole in enumerate(holes) if hole.endswith(b"\\")]
    if not cuts or len(holes) == 1:
        return [(0, len(holes), None)]
    decoded: list[tuple[int, int, list[str] | None]] = []
    begin = 0
    for cut in [*cuts, len(holes)]:
        if begin < cut:
            decoded.append((begin, cut, decode_holes(holes[begin:cut])))
        if cut < len(holes):
            decoded.append((cut, cut + 1, None))
        begin = cut + 1
    return decoded


def split_events(block: bytes) -> list[bytes] | None:
    """The payloads of a block at its event boundaries (one ``bytes.split``), or None for a block
    that does not start with ``data: `` and end with a blank line. An item may still hold a line
    break (a multi-line event): only a template event is proven one line."""
    if not (block.startswith(_DATA) and block.endswith(b"\n\n")):
        return None
    events = block.split(BOUNDARY)
    events[0] = events[0][6:]
    events[-1] = events[-1][:-2]
    return events


def event_at(block: bytes, at: int) -> tuple[bytes, int]:
    """The payload of the event starting at ``at`` in a block of one-line events, and where the next
    one starts (``len(block)`` after the last): the bytes ``split_events`` gives that event."""
    found = block.find(BOUNDARY, at)
    if found < 0:
        return block[at:-2], len(block)
    return block[at:found], found + len(BOUNDARY)


def framed(payloads: list[bytes]) -> bytes:
    """Payloads as the block of their events (the bytes they were split from)."""
    return _DATA + BOUNDARY.join(payloads) + b"\n\n"


def stretches(events: list[bytes], template: Template, block: bytes,
              at: int) -> Iterator[tuple[int, int, list[bytes] | None]]:
    """(start, end, holes): the events in order as stretches of template-shaped events (with their
    holes, not yet decoded) and stretches of other events (holes None).

    ``block``: the bytes ``events`` were split from (``events[0]`` starts at ``at``, the last ends
    the block but for its blank line): the proof compares in place instead of joining the events
    again (two 100 KB copies fewer per 500 events: fewer pages the allocator hands back to the
    system and faults in again, ~80 µs a block in a busy process)."""
    count = len(events)
    first = 0 if _is_template(events[0], template) else 1
    last = count if _is_template(events[-1], template) else count - 1
    holes = None
    if first < last:
        start = at + (len(events[0]) + len(BOUNDARY) if first else 0)
        end = len(block) - 2 - (len(events[-1]) + len(BOUNDARY) if last < count else 0)
        holes = template_run(events[first:last], template, (block, start, end))
    if holes is not None:
        if first:
            yield 0, first, None
        yield first, last, holes
        if last < count:
            yield last, count, None
        return
    hole_of = template.hole_of
    start = 0
    while start < count:  # event by event (a tool call or another event mid-block): ~0.3 µs each
        is_run = _is_template(events[start], template)
        end = start + 1
        while end < count and _is_template(events[end], template) == is_run:
            end += 1
        yield start, end, list(map(hole_of, events[start:end])) if is_run else None
        start = end


def _is_template(payload: bytes, template: Template) -> bool:
    return (len(payload) >= len(template.before) + len(template.after) and payload.startswith(template.before)
            and payload.endswith(template.after))  # fmt: skip


def template_run(stretch: list[bytes], template: Template, span: tuple[bytes, int, int]) -> list[bytes] | None:
    """The holes of ``stretch`` if every event in it is ``before + hole + after``, else None.

    The first event starts as the template does and the last ends so; in between, one comparison:
    the stretch's bytes from the first hole to the last equal the holes joined with ``after +
    boundary + before``. An event shorter than the template's bytes has an empty hole and makes
    the join longer than the stretch, so equal lengths pin every boundary. ``span``: (block,
    start, end), where the stretch's bytes (``BOUNDARY.join(stretch)``) sit in its block; they are
    compared there, in place."""
    if not (_is_template(stretch[0], template) and _is_template(stretch[-1], template)):
        return None
    holes = list(map(template.hole_of, stretch))
    joined = template.between.join(holes)
    before, after = len(template.before), len(template.after)
    block, start, end = span
    same = len(joined) == end - start - before - after and block.startswith(joined, start + before)
    return holes if same else None
