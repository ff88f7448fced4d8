"""What a streamed chunk must look like before any client sees it.

Every event the relay forwards is checked against ``Chunk``: valid JSON, an object, and every
field relaystack or a client SDK reads has the right type (``choices`` a list of objects,
``index`` an int, ``delta`` an object, ``content`` a string...). The check is msgspec's typed
decoding: fields relaystack does not read are skipped in C without building objects, which
makes it about twice as cheap as ``orjson.loads`` of the same events (bench/sse_validate.py).
Each event is decoded on its own: decoding a block's events joined into one JSON array is not
cheaper here, and would accept two halves of an object sent as two events.

Most of a long stream is text events alike but for their text, and ``StreamCheck`` (one per
stream) proves those without decoding each (``relaystack.text_template``): the first text event is
decoded, its bytes around the content string become a template, kept only if the template with a
probe string in the hole decodes to the same ``Chunk`` with the probe as its content. A stretch of
events that are the template with a JSON string in the hole (one comparison, one ``orjson.loads``
of the holes as an array of strings) is then that ``Chunk`` but for its content: valid, with the
same usage and finish reason. Everything else is decoded event by event as before.

With the C accelerator (``text_template.ACCEL``) a block is walked instead of split: the C module
proves a stretch of template events in place and says where it stopped; the event there is
decoded, and the walk goes on. The relay then gets the count of events and their chunks, and the
payloads only if it asks for them (``BlockEvents``: split on first use, which the usual block never
needs).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any, overload

import msgspec

from relaystack import text_template
from relaystack.sse import plain_payloads
from relaystack.text_template import (
    PROBE,
    Template,
    decoded_runs,
    event_at,
    find_template,
    split_events,
    stretches,
)

__all__ = ["CHUNK_DECODER", "BlockEvents", "Chunk", "ChunkProblem", "StreamCheck", "decode_event",
           "decode_plain_block"]

# events of a block decoded one by one while there is no template (a stream's first events)
_PEEK = 4
# stop looking for a template (or using one) after this many misses: the upstream's events differ
_MAX_MISSES = 3


class FunctionDelta(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, gc=False):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None


class Delta(msgspec.Struct, gc=False):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class Logprobs(msgspec.Struct, gc=False):
    content: list[dict[str, Any]] | None = None


class Choice(msgspec.Struct, gc=False):
    index: int = 0
    delta: Delta | None = None
    text: str | None = None  # completions
    finish_reason: str | None = None
    logprobs: Logprobs | None = None


class Chunk(msgspec.Struct, gc=False):
    """A ``chat.completion.chunk`` or a completions chunk; an error event does not decode."""

    choices: list[Choice]
    usage: dict[str, Any] | None = None
    # an in-band error event (``{"error": {...}}``) fails the check and is read on the slow path
    error: None = None


CHUNK_DECODER = msgspec.json.Decoder(Chunk)
# ValidationError (right JSON, wrong shape) is a subclass of DecodeError; msgspec before 0.23 raises
# UnicodeDecodeError for bytes that are not UTF-8
ChunkProblem = (msgspec.DecodeError, UnicodeDecodeError)
_decode = CHUNK_DECODER.decode


def decode_event(payload: bytes) -> Chunk:
    """One event's payload as a ``Chunk``; raises ``ChunkProblem``."""
    return CHUNK_DECODER.decode(payload)


def decode_plain_block(block: bytes) -> tuple[list[bytes], list[Chunk]] | None:
    """The payloads and chunks of a block whose every event is one ``data: `` line holding a
    valid chunk; None for any other block (comments, several lines per event, ``[DONE]``, an
    error event, a malformed event): the caller reads that one event by event, which says
    precisely what is wrong. Each event is decoded on its own (``map`` over a C method)."""
    payloads = plain_payloads(block)
    if payloads is None:
        return None
    try:
        return payloads, list(map(_decode, payloads))
    except ChunkProblem:
        return None


class BlockEvents(Sequence[bytes]):
    """The payloads of a checked block of ``count`` one-line events, split only if they are read."""

    __slots__ = ("_block", "_count", "_events")

    def __init__(self, block: bytes, count: int) -> None:
        self._block = block
        self._count = count
        self._events: list[bytes] | None = None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        return self._split()[index]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._split())

    def _split(self) -> list[bytes]:
        if self._events is None:
            events = split_events(self._block)
            assert events is not None and len(events) == self._count, "a checked block splits into its events"
            self._events = events
        return self._events


class StreamCheck:
    """One stream's check of its plain blocks: ``plain_block`` is ``decode_plain_block`` with the
    stream's text events proven against a template instead of decoded one by one.

    The chunks it returns for template events are the template's ``Chunk`` (one object, repeated):
    every field but the content is the event's own, and the relay reads only usage and finish
    reasons from them."""

    __slots__ = ("_chunk", "_misses", "_scan", "_take", "decoded", "decoded_at", "proven_holes", "proven_spans",
                 "template")

    def __init__(self, keep_holes: bool = False) -> None:
        """``keep_holes``: the walk hands back each proven stretch's holes too (``proven_holes``), for
        the stored form (``relaystack.stored_stream``) to take instead of walking the stream again."""
        self.template: Template | None = None
        self._chunk: Chunk | None = None
        self._misses = 0
        accel = text_template.ACCEL
        self._scan = accel.prove_run if accel is not None else None
        self._take = accel.take_every if accel is not None and keep_holes else None
        # what the last block's walk proved (C path only; else empty and None): its stretches of template
        # events as (start, end, events), each event the template with a JSON string in its hole, and
        # the chunks it decoded one by one (every other chunk is the template's: no usage, no finish reason)
        self.proven_spans: list[tuple[int, int, int]] = []
        # with ``keep_holes``: each proven stretch's holes, every one joined by ``\n`` (``take_every``)
        self.proven_holes: list[bytes] = []
        self.decoded: list[Chunk] | None = None
        # where each of those decoded events' payload starts and ends in the block
        self.decoded_at: list[tuple[int, int]] = []

    def stop_taking_holes(self) -> None:
        """From the next block on, the walk proves without handing back the holes."""
        self._take = None

    def plain_block(self, block: bytes) -> tuple[Sequence[bytes], list[Chunk]] | None:
        """The payloads and chunks of a block whose every event is one ``data: `` line holding a valid
        chunk; None for any other block (the caller reads that one event by event)."""
        self.proven_spans, self.proven_holes, self.decoded, self.decoded_at = [], [], None, []
        if self.template is None and self._misses >= _MAX_MISSES:
            return decode_plain_block(block)
        if self._scan is not None:
            return self._walk(block)
        events = split_events(block)
        if events is None:
            return None
        chunks: list[Chunk] = []
        try:
            rest = self._learn(events, chunks) if self.template is None else events
            if rest:
                if self.template is None:
                    _decode_lines(rest, chunks)
                else:
                    assert self._chunk is not None
                    # where the rest starts in the block (after the events the learning decoded)
                    at = 6 + sum(len(event) + 8 for event in events[: len(events) - len(rest)])
                    self._prove(rest, (block, at), self.template, self._chunk, chunks)
        except ChunkProblem:
            return None
        return events, chunks

    def _walk(self, block: bytes) -> tuple[Sequence[bytes], list[Chunk]] | None:
        """``plain_block`` with the C accelerator: stretches of template events proven in place, the
        events between them decoded one by one (each checked for a line break: one line each)."""
        if not (block.startswith(b"data: ") and block.endswith(b"\n\n")):
            return None
        assert self._scan is not None
        chunks: list[Chunk] = []
        decoded: list[Chunk] = []
        decoded_at: list[tuple[int, int]] = []
        spans: list[tuple[int, int, int]] = []
        holes: list[bytes] = []
        take = self._take
        at, size, peeked, proven, after_template = 6, len(block), 0, 0, 0
        try:
            while at < size:
                template = self.template
                if template is not None:
                    start = at
                    if take is None:
                        count, at = self._scan(block, start, template.before, template.after)
                    else:
                        count, at, taken = take(block, start, template.before, template.after)
                        if count:
                            holes.append(taken)
                    if count:
                        assert self._chunk is not None
                        chunks += [self._chunk] * count
                        spans.append((start, at, count))
                        proven += count
                        after_template += count
                        if at >= size:
                            break
                    after_template += 1
                start = at
                payload, at = event_at(block, start)
                _decode_lines([payload], decoded)
                decoded_at.append((start, start + len(payload)))
                chunks.append(decoded[-1])
                if self.template is None and peeked < _PEEK:
                    peeked += 1
                    self._learn_from(payload, decoded[-1])
        except ChunkProblem:
            return None
        self._note_proof(proven, after_template)
        self.proven_spans, self.proven_holes, self.decoded, self.decoded_at = spans, holes, decoded, decoded_at
        return BlockEvents(block, len(chunks)), chunks

    def _learn_from(self, payload: bytes, chunk: Chunk) -> None:
        """Keeps the template of ``payload`` (decoded as ``chunk``) if it is a plain text event that has one."""
        text = _text_of(chunk)
        if not text:
            return
        self.template = find_template(payload, text, partial(_probe_fits, chunk=chunk))
        if self.template is None:
            self._misses += 1
        else:
            self._chunk = chunk

    def _note_proof(self, proven: int, events: int) -> None:
        """A block of several events after the template, none of them proven, is a miss."""
        if not proven and events > 1:
            self._misses += 1
            if self._misses >= _MAX_MISSES:
                self.template = None  # this upstream's events differ in more than their text

    def _learn(self, events: list[bytes], chunks: list[Chunk]) -> list[bytes]:
        """Decodes the first events one by one until one teaches the template; returns the rest."""
        taken = 0
        while taken < min(_PEEK, len(events)) and self.template is None:
            _decode_lines(events[taken : taken + 1], chunks)
            self._learn_from(events[taken], chunks[-1])
            taken += 1
        return events[taken:]

    def _prove(self, events: list[bytes], source: tuple[bytes, int], template: Template, shape: Chunk,
               chunks: list[Chunk]) -> None:
        took = 0
        for start, end, holes in stretches(events, template, *source):
            if holes is None:
                _decode_lines(events[start:end], chunks)
                continue
            for first, last, texts in decoded_runs(holes):
                if texts is None:
                    _decode_lines(events[start + first : start + last], chunks)
                else:
                    took += last - first
                    chunks.extend([shape] * (last - first))
        self._note_proof(took, len(events))


def _decode_lines(payloads: list[bytes], chunks: list[Chunk]) -> None:
    """Each payload decoded into ``chunks``; raises ``ChunkProblem`` (a line break too: not one line)."""
    if b"\n" in b"".join(payloads):
        raise msgspec.DecodeError("an event of several lines")
    chunks.extend(map(_decode, payloads))


def _text_of(chunk: Chunk) -> str | None:
    """The content of a chunk that says nothing but text of choice 0, else None (a stream's first
    event, which names the role too, is not what the events after it look like)."""
    if chunk.usage is not None or len(chunk.choices) != 1:
        return None
    choice = chunk.choices[0]
    delta = choice.delta
    if delta is None or choice.finish_reason is not None or delta.tool_calls is not None:
        return None
    if delta.role is not None or delta.refusal is not None:
        return None
    return delta.content


def _probe_fits(template: Template, chunk: Chunk) -> bool:
    """The template with ``PROBE`` in its hole decodes to ``chunk`` with ``PROBE`` as its content."""
    try:
        probed = _decode(template.probed())
    except ChunkProblem:
        return False
    choice = chunk.choices[0]
    assert choice.delta is not None
    delta = msgspec.structs.replace(choice.delta, content=PROBE)
    expected = msgspec.structs.replace(chunk, choices=[msgspec.structs.replace(choice, delta=delta)])
    return bool(probed == expected)
