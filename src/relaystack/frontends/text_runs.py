"""A stream's relayed blocks as what a translator writes: runs of plain text, and the other chunks.

Most of a long stream is plain text: events whose only news is ``delta.content`` of choice 0, and
an upstream writes them all alike but for that string (same id, model, fields, order). Once the
reader has seen one such event (read the careful way: parsed, ``plain_text``), it keeps that
event's bytes around its content string as a ``Template``, checked by parsing it back with
another string in the hole. Then a block is split at event boundaries and a stretch of events
that are the template with some string in the hole is read without parsing an event at all:
one comparison of the stretch with the template joined around the holes proves every event's
bytes (``_template_run``), and one ``orjson.loads`` of the holes as a JSON array of strings (one
string per hole, none ending in a backslash) proves each hole is exactly one JSON string and
decodes them all (``decode_holes``). The translators splice the holes into their events as they are (already
escaped JSON), so nothing is encoded again.

Anything else (the first events, tool calls, the finishing chunk, an event that differs from the
template in any byte outside the hole, a hole that is not one JSON string) is parsed and read
event by event as before: the fast path only ever takes events the careful path would call plain
text, and never yields a byte that is not JSON. An upstream whose events differ in more than
the text (OpenAI's per-event ``obfuscation``, Together's ``token_id``) keeps the careful path: the
reader drops a template that stopped matching.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from relaystack import sse
from relaystack.frontends.chat_reader import Block, ChatTurn, parse_block, plain_text

__all__ = ["Template", "TextRun", "TextRuns", "decode_holes", "learn_template"]

_BOUNDARY = b"\n\ndata: "
_DATA = b"data: "
_PROBE = "relaystack template probe"
_PROBE_BYTES = _PROBE.encode()
_BACKSLASH = ord("\\")
# events of a block read the careful way, one by one, while there is no template (the first
# events of a stream: its role, its first text), before the rest of the block
_PEEK = 4
# give up looking for a template (or using one) after this many misses: the upstream's events differ
_MAX_MISSES = 3


@dataclass(slots=True)
class TextRun:
    """Plain text events in a row: their texts, and (from the fast path) each text as the upstream
    escaped it, ready to be spliced into a JSON string (None: the translator encodes ``texts``)."""

    texts: list[str]
    raw: list[bytes] | None = None


class Template:
    """A plain text event's payload around its content string: ``before + hole + after``."""

    __slots__ = ("after", "before", "between", "hole_of")

    def __init__(self, before: bytes, after: bytes) -> None:
        self.before = before
        self.after = after
        # what separates the holes of two template events in a row in a block
        self.between = after + _BOUNDARY + before
        # a template event's payload -> its hole (a C call per event when mapped over a list)
        self.hole_of = operator.itemgetter(slice(len(before), -len(after)))

    def __repr__(self) -> str:
        return f"Template({self.before!r}, {self.after!r})"


def learn_template(payload: bytes, chunk: dict[str, Any], text: str) -> Template | None:
    """The template of ``payload`` (parsed as ``chunk``, a plain text event saying ``text``), or None.

    The hole is the value of a ``"content"`` key whose string decodes to ``text``; the template is
    kept only if the payload with another string in the hole parses to the same event with that
    string as its content (so the hole is the delta's content, wherever the upstream puts it)."""
    start = 0
    while (key := payload.find(b'"content"', start)) >= 0:
        start = key + 9
        hole = _string_after_colon(payload, start)
        if hole is None:
            continue
        begin, end = hole
        template = Template(payload[:begin], payload[end:])
        if _decodes_to(payload[begin:end], text) and _probe_matches(template, chunk):
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


def _probe_matches(template: Template, chunk: dict[str, Any]) -> bool:
    try:
        probed = orjson.loads(template.before + _PROBE_BYTES + template.after)
        choice = chunk["choices"][0]
        expected = {**chunk, "choices": [{**choice, "delta": {**choice["delta"], "content": _PROBE}}]}
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return False
    return bool(probed == expected) and plain_text(probed) == _PROBE


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


class TextRuns:
    """Reads one stream's blocks for a translator: ``read`` yields ``TextRun``s and chunk dicts, in order.

    A chunk must be given to ``turn.add`` before the next item is asked for (the careful path
    calls an event plain only once the turn has the completion's id, as ``ChatTurn`` expects)."""

    def __init__(self, turn: ChatTurn) -> None:
        self.turn = turn
        self.template: Template | None = None
        self._misses = 0

    def read(self, block: Block) -> Iterator[TextRun | dict[str, Any]]:
        if isinstance(block, list) or (self.template is None and self._misses >= _MAX_MISSES):
            yield from self._careful(block)
            return
        if not (block.startswith(_DATA) and block.endswith(b"\n\n")):
            yield from self._careful(block)
            return
        events = block.split(_BOUNDARY)  # each event's payload, once the ends are trimmed
        events[0] = events[0][6:]
        events[-1] = events[-1][:-2]
        if self.template is None:  # the first events the careful way, one by one until one teaches it
            taken = 0
            while taken < min(_PEEK, len(events)) and self.template is None:
                yield from self._careful(_framed(events[taken : taken + 1]), learn=True)
                taken += 1
            events = events[taken:]
            if not events:
                return
            if self.template is None:
                yield from self._careful(_framed(events))
                return
        yield from self._fast(events, self.template)

    # -- the careful path: every event parsed ------------------------------------------------------
    def _careful(self, block: Block, *, learn: bool = False) -> Iterator[TextRun | dict[str, Any]]:
        chunks = block if isinstance(block, list) else parse_block(block)
        texts: list[str] = []
        for index, chunk in enumerate(chunks):
            text = plain_text(chunk) if self.turn.completion_id is not None else None
            if text is None:
                if texts:
                    yield TextRun(texts)
                    texts = []
                yield chunk
            elif text:
                texts.append(text)
                if learn and self.template is None and isinstance(block, bytes):
                    self._learn(block, index, chunk, text)
        if texts:
            yield TextRun(texts)

    def _learn(self, block: bytes, index: int, chunk: dict[str, Any], text: str) -> None:
        payloads = sse.payloads(block)  # the read() path gives one event at a time: a cheap split
        if index < len(payloads) and b"\n" not in payloads[index]:
            self.template = learn_template(payloads[index], chunk, text)
        if self.template is None:
            self._misses += 1

    # -- the fast path: stretches of template events -----------------------------------------------
    def _fast(self, events: list[bytes], template: Template) -> Iterator[TextRun | dict[str, Any]]:
        took = False
        for start, end, holes in _stretches(events, template):
            if holes is None or self.turn.completion_id is None:
                yield from self._careful(_framed(events[start:end]))
                continue
            for first, last, texts in _decoded(holes):
                if texts is None:
                    yield from self._careful(_framed(events[start + first : start + last]))
                    continue
                took = True
                run = holes[first:last]
                if "" in texts:  # an empty content says nothing, as on the careful path
                    kept = [(t, h) for t, h in zip(texts, run, strict=True) if t]
                    texts, run = [t for t, _ in kept], [h for _, h in kept]
                if texts:
                    yield TextRun(texts, run)
        if not took and len(events) > 1:
            self._misses += 1
            if self._misses >= _MAX_MISSES:
                self.template = None  # this upstream's events differ in more than their text


def _decoded(holes: list[bytes]) -> list[tuple[int, int, list[str] | None]]:
    """(first, last, texts) over ``holes``: runs decoded by ``decode_holes``, and (texts None) what
    it refuses. A hole that ends in a backslash (a text ending in one) is refused alone, not with
    its whole run; a run refused for anything else goes the careful way whole (it is malformed)."""
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


def _framed(payloads: list[bytes]) -> bytes:
    """Payloads as the block of their events (the bytes they were split from)."""
    return _DATA + _BOUNDARY.join(payloads) + b"\n\n"


def _stretches(events: list[bytes], template: Template) -> Iterator[tuple[int, int, list[bytes] | None]]:
    """(start, end, holes): the events in order as stretches of template events (with their holes)
    and stretches of other events (holes None)."""
    count = len(events)
    first = 0 if _is_template(events[0], template) else 1
    last = count if _is_template(events[-1], template) else count - 1
    holes = _template_run(events[first:last], template) if first < last else None
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


def _template_run(stretch: list[bytes], template: Template) -> list[bytes] | None:
    """The holes of ``stretch`` if every event in it is ``before + hole + after``, else None.

    The first event starts as the template does and the last ends so; in between, one comparison:
    the stretch's bytes from the first hole to the last equal the holes joined with ``after +
    boundary + before``. An event shorter than the template's bytes has an empty hole and makes
    the join longer than the stretch, so equal lengths pin every boundary."""
    if not (_is_template(stretch[0], template) and _is_template(stretch[-1], template)):
        return None
    holes = list(map(template.hole_of, stretch))
    if template.between.join(holes) != _BOUNDARY.join(stretch)[len(template.before) : -len(template.after)]:
        return None
    return holes
