"""A stream's relayed blocks as what a translator writes: runs of plain text, and the other chunks.

Most of a long stream is plain text: events whose only news is ``delta.content`` of choice 0, and
an upstream writes them all alike but for that string. Once the reader has seen one such event
(read the careful way: parsed, ``plain_text``), it keeps that event's bytes around its content
string as a ``Template`` (``relaystack.text_template``, shared with the relay's check), checked by
parsing it back with another string in the hole. Then a stretch of events that are the template
with some string in the hole is read without parsing an event at all: one comparison proves every
event's bytes, and one ``orjson.loads`` of the holes as a JSON array of strings decodes them all
(``decode_holes``). The translators splice the holes into their events as they are (already
escaped JSON), so nothing is encoded again.

Anything else (the first events, tool calls, the finishing chunk, an event that differs from the
template in any byte outside the hole, a hole that is not one JSON string) is parsed and read
event by event as before: the fast path only ever takes events the careful path would call plain
text, and never yields a byte that is not JSON. An upstream whose events differ in more than
the text (OpenAI's per-event ``obfuscation``, Together's ``token_id``) keeps the careful path: the
reader drops a template that stopped matching.

With the C accelerator (``text_template.ACCEL``) the block is walked instead of split: its
``take_run`` proves a stretch of template events in place and hands back their holes joined by a
line feed (which a valid hole never holds raw); the texts are decoded in one ``orjson.loads`` of
the holes run together, and the events it stopped at go the careful way, as a block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from relaystack import sse, text_template
from relaystack.frontends.chat_reader import Block, ChatTurn, parse_block, plain_text
from relaystack.text_template import (
    PROBE,
    Template,
    decode_holes,
    decoded_runs,
    event_at,
    find_template,
    framed,
    split_events,
    stretches,
)

__all__ = ["Template", "TextRun", "TextRuns", "decode_holes", "learn_template"]

# events of a block read the careful way, one by one, while there is no template (the first
# events of a stream: its role, its first text), before the rest of the block
_PEEK = 4
# give up looking for a template (or using one) after this many misses: the upstream's events differ
_MAX_MISSES = 3


class TextRun:
    """Plain text events in a row: their texts, and (from the fast path) each text as the upstream
    escaped it, ready to be spliced into a JSON string (None: the translator encodes ``texts``).

    The C path hands the pieces over joined by a line feed (``joined``: a byte no piece holds raw),
    so a translator that writes them joined (``spliced``) never makes one object per event."""

    __slots__ = ("_raw", "joined", "texts")

    def __init__(self, texts: list[str], raw: list[bytes] | None = None, *, joined: bytes | None = None) -> None:
        self.texts = texts
        self._raw = raw
        self.joined = joined

    @property
    def raw(self) -> list[bytes] | None:
        if self._raw is None and self.joined is not None:
            self._raw = self.joined.split(b"\n")
        return self._raw

    def spliced(self, between: bytes) -> bytes | None:
        """The escaped pieces joined with ``between``; None when there are none (the careful path)."""
        if self.joined is not None:
            return self.joined.replace(b"\n", between)
        return None if self._raw is None else between.join(self._raw)


def learn_template(payload: bytes, chunk: dict[str, Any], text: str) -> Template | None:
    """The template of ``payload`` (parsed as ``chunk``, a plain text event saying ``text``), or None:
    kept only if the payload with another string in the hole parses to the same event with that
    string as its content (so the hole is the delta's content, wherever the upstream puts it)."""
    return find_template(payload, text, lambda template: _probe_matches(template, chunk))


def _probe_matches(template: Template, chunk: dict[str, Any]) -> bool:
    try:
        probed = orjson.loads(template.probed())
        choice = chunk["choices"][0]
        expected = {**chunk, "choices": [{**choice, "delta": {**choice["delta"], "content": PROBE}}]}
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return False
    return bool(probed == expected) and plain_text(probed) == PROBE


class TextRuns:
    """Reads one stream's blocks for a translator: ``read`` yields ``TextRun``s and chunk dicts, in order.

    A chunk must be given to ``turn.add`` before the next item is asked for (the careful path
    calls an event plain only once the turn has the completion's id, as ``ChatTurn`` expects)."""

    def __init__(self, turn: ChatTurn) -> None:
        self.turn = turn
        self.template: Template | None = None
        self._misses = 0
        self._take = text_template.ACCEL.take_run if text_template.ACCEL is not None else None

    def read(self, block: Block) -> Iterator[TextRun | dict[str, Any]]:
        if isinstance(block, list) or (self.template is None and self._misses >= _MAX_MISSES):
            yield from self._careful(block)
            return
        if self._take is not None:
            yield from self._read_in_place(block)
            return
        events = split_events(block)  # each event's payload
        if events is None:
            yield from self._careful(block)
            return
        at = 6
        if self.template is None:  # the first events the careful way, one by one until one teaches it
            taken = 0
            while taken < min(_PEEK, len(events)) and self.template is None:
                yield from self._careful(framed(events[taken : taken + 1]), learn=True)
                taken += 1
            at = 6 + sum(len(event) + 8 for event in events[:taken])  # where the rest starts in the block
            events = events[taken:]
            if not events:
                return
            if self.template is None:
                yield from self._careful(framed(events))
                return
        yield from self._fast(events, self.template, block, at)

    def _read_in_place(self, block: bytes) -> Iterator[TextRun | dict[str, Any]]:
        """``read`` with the C accelerator: no split of the block, not even to learn the template."""
        if not (block.startswith(b"data: ") and block.endswith(b"\n\n")):
            yield from self._careful(block)
            return
        at, size, taken = 6, len(block), 0
        while self.template is None and taken < _PEEK and at < size:  # one by one until one teaches it
            _, following = event_at(block, at)
            yield from self._careful(block[at - 6 : following - 6 if following < size else size], learn=True)
            at, taken = following, taken + 1
        if at >= size:
            return
        if self.template is None:
            yield from self._careful(block[at - 6 :])
        else:
            yield from self._walk(block, self.template, at)

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

    # -- the fast path with the C accelerator: the block walked in place ----------------------------
    def _walk(self, block: bytes, template: Template, at: int) -> Iterator[TextRun | dict[str, Any]]:
        """From ``at`` (an event's start) on: stretches of template events as ``TextRun``s, the events
        between them the careful way (as one block per stretch of them)."""
        assert self._take is not None
        size, proven, events = len(block), 0, 0
        other = at  # where the events not yet read the careful way start
        while at < size:
            if self.turn.completion_id is not None:
                count, end, holes = self._take(block, at, template.before, template.after)
                if count:
                    if other < at:
                        yield from self._careful(block[other - 6 : at - 6])
                    proven, events, at, other = proven + count, events + count, end, end
                    if holes:
                        text: str = orjson.loads(b'"' + holes.replace(b"\n", b"") + b'"')
                        yield TextRun([text], joined=holes)
                    continue
            _, at = event_at(block, at)
            events += 1
            if self.turn.completion_id is None:  # the careful path gives the turn its id first
                yield from self._careful(block[other - 6 : at - 6 if at < size else size])
                other = at
        if other < size:
            yield from self._careful(block[other - 6 :])
        if not proven and events > 1:
            self._miss()

    def _miss(self) -> None:
        self._misses += 1
        if self._misses >= _MAX_MISSES:
            self.template = None  # this upstream's events differ in more than their text

    # -- the fast path: stretches of template events -----------------------------------------------
    def _fast(
        self, events: list[bytes], template: Template, block: bytes, at: int
    ) -> Iterator[TextRun | dict[str, Any]]:
        took = False
        for start, end, holes in stretches(events, template, block, at):
            if holes is None or self.turn.completion_id is None:
                yield from self._careful(framed(events[start:end]))
                continue
            for first, last, texts in decoded_runs(holes):
                if texts is None:
                    yield from self._careful(framed(events[start + first : start + last]))
                    continue
                took = True
                run = holes[first:last]
                if "" in texts:  # an empty content says nothing, as on the careful path
                    kept = [(t, h) for t, h in zip(texts, run, strict=True) if t]
                    texts, run = [t for t, _ in kept], [h for _, h in kept]
                if texts:
                    yield TextRun(texts, run)
        if not took and len(events) > 1:
            self._miss()
