"""A streamed completion's stored form: its events, with the stretches of text events packed.

A stored stream keeps the bytes the client got (``data: {...}\\n\\n`` events). Most of a long
stream is text events that an upstream writes alike but for their text (``text_template``), so
the stored copy of a 500-event stream is ~99 KB of which ~95 % repeats one template. Writing
that to SQLite is not cheap (the WAL writes every byte, and a checkpoint writes it again into
the database: ~60 µs of CPU per stream when a row is replaced, ~430 µs when every stream adds a
new row, as real traffic does), so a stretch of template events is stored as the template once
and the holes (each event's content string, as the upstream escaped it):

    relaystack-stream/1\\n
    R<n>\\n<n bytes: events as sent>
    T<len before> <len after> <holes> <n>\\n<before><after><n bytes: the holes joined by \\n>
    ...

A ``T`` record stands for ``data: before+hole+after\n\n`` for each hole, in order. Packing is
exact by construction: a stretch is packed only where the C walk proved, in the very bytes the
client got, that each event is the template around a valid JSON string's inside (no raw line
feed, so the line feeds between holes split back), so a stored row reads back byte for byte what
was sent, redactions and the caller's model id included. Everything else (a tool call, the first
and last events, a run of fewer than four template events) is an ``R`` record, as sent.

A blob that starts with ``data:`` is the older form (events as sent), still read as it is.
Pure functions on bytes, importable from any layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from relaystack import text_template

__all__ = ["MAGIC", "Part", "Stretch", "expand", "first_payload_of_packed", "is_packed", "pack", "packed", "parts_of"]

MAGIC = b"relaystack-stream/1\n"
_DATA = b"data: "
_BOUNDARY = b"\n\ndata: "
# fewer template events than this in a stretch are kept as sent (a header costs ~20 bytes)
MIN_RUN = 4


@dataclass(frozen=True, slots=True)
class Stretch:
    """``count`` events, each ``data: before + hole + after\n\n``; ``holes``: every hole (as escaped,
    empty ones too) joined by ``\n``, so it splits into exactly ``count`` pieces."""

    before: bytes
    after: bytes
    count: int
    holes: bytes

    def size(self) -> int:
        """The bytes of the events it stands for."""
        return self.count * (len(_DATA) + len(self.before) + len(self.after) + 2) + len(self.holes) - (self.count - 1)


# a piece of a stored stream: events as sent, or a stretch of template events
Part = bytes | Stretch


def is_packed(blob: bytes) -> bool:
    return blob.startswith(MAGIC)


def pack(events: bytes, sent: tuple[bytes, bytes]) -> bytes:
    """The stored form of a stream's ``events`` (one-line ``data:`` events, as the client got them):
    ``packed(parts_of(events, sent))``."""
    return packed(parts_of(events, sent))


def parts_of(events: bytes, sent: tuple[bytes, bytes]) -> list[Part]:
    """``events`` as parts: each stretch of events that are the template ``sent``
    (``(before, after)`` as the client got it, the relay's byte edits applied) around a JSON string's
    inside, proven in place by the C walk (``text_template.ACCEL.take_every``: the template's bytes
    compared, each hole validated), is a ``Stretch`` (``packed`` keeps a run shorter than ``MIN_RUN``
    as sent); the bytes between stretches stay as sent. ``[events]`` when nothing packs, or when the
    C module is not built (its pure-Python stand-in would cost more than the bytes it saves)."""
    take = text_template.ACCEL.take_every if text_template.ACCEL is not None else None
    before, after = sent
    if take is None or not before or not after or not events.startswith(_DATA):
        return [events]
    parts: list[Part] = []
    size, at, kept_from = len(events), len(_DATA), 0  # ``at``: an event's payload; from ``kept_from``: not packed yet
    while at < size:
        count, end, holes = take(events, at, before, after)
        if count:
            if kept_from < at - len(_DATA):
                parts.append(events[kept_from : at - len(_DATA)])
            parts.append(Stretch(before, after, count, holes))
            kept_from = end - len(_DATA) if end < size else size
            at = end
        else:  # the event at ``end`` is not the template's: past it
            _, at = text_template.event_at(events, end) if end < size else (b"", size)
    if kept_from < size:
        parts.append(events[kept_from:] if kept_from else events)
    return parts


def packed(parts: Iterable[Part]) -> bytes:
    """The stored blob of a stream's parts, in order: ``MAGIC`` and one record per run of raw bytes
    and per run of stretches of one template (merged: a relay hands over a stretch per block, a
    block per socket read); a run of fewer than ``MIN_RUN`` events is kept as sent. The raw events
    themselves when no stretch is left."""
    records: list[bytes] = []
    raw: list[bytes] = []
    run: list[Stretch] = []

    def end_run() -> None:
        count = sum(stretch.count for stretch in run)
        if count >= MIN_RUN:
            if raw:
                records.append(_raw_record(b"".join(raw)))
                raw.clear()
            records.append(_stretch_record(run[0].before, run[0].after, count, [s.holes for s in run]))
        else:
            raw.extend(map(_events_of, run))
        run.clear()

    for part in parts:
        if isinstance(part, Stretch):
            if run and (run[0].before != part.before or run[0].after != part.after):
                end_run()
            run.append(part)
        elif part:
            if run:
                end_run()
            raw.append(part)
    if run:
        end_run()
    if not records:
        return b"".join(raw)
    if raw:
        records.append(_raw_record(b"".join(raw)))
    return MAGIC + b"".join(records)


def _stretch_record(before: bytes, after: bytes, count: int, holes: list[bytes]) -> bytes:
    joined = holes[0] if len(holes) == 1 else b"\n".join(holes)
    return b"T%d %d %d %d\n" % (len(before), len(after), count, len(joined)) + before + after + joined


def _events_of(stretch: Stretch) -> bytes:
    """The events a stretch stands for, as sent."""
    return _template_events(stretch.before, stretch.after, stretch.holes.split(b"\n"))


def _template_events(before: bytes, after: bytes, holes: list[bytes]) -> bytes:
    """``data: before + hole + after\n\n`` for each hole, in one bytes object."""
    return _DATA + before + (after + _BOUNDARY + before).join(holes) + after + b"\n\n"


def _raw_record(events: bytes) -> bytes:
    return b"R%d\n" % len(events) + events


def expand(blob: bytes) -> bytes:
    """The events a packed blob stands for, as the client got them. Raises ``ValueError`` on a
    damaged blob (the store's read path marks such a row instead of failing)."""
    return b"".join(_expanded(blob, limit=None))


def first_payload_of_packed(blob: bytes) -> bytes | None:
    """The first event's payload of a packed blob (without expanding the rest)."""
    for events in _expanded(blob, limit=1):
        if events.startswith(_DATA):
            end = events.find(b"\n")
            return events[len(_DATA) : end if end >= 0 else len(events)]
    return None


def _expanded(blob: bytes, limit: int | None) -> list[bytes]:
    if not is_packed(blob):
        raise ValueError("not a packed stream")
    out: list[bytes] = []
    at = len(MAGIC)
    while at < len(blob) and (limit is None or len(out) < limit):
        line_end = blob.find(b"\n", at)
        if line_end < 0:
            raise ValueError("a packed stream record without its header line")
        kind, fields = blob[at : at + 1], blob[at + 1 : line_end].split(b" ")
        at = line_end + 1
        if kind == b"R" and len(fields) == 1:
            size = int(fields[0])
            out.append(_take(blob, at, size))
            at += size
        elif kind == b"T" and len(fields) == 4:
            n_before, n_after, n_holes, size = map(int, fields)
            before = _take(blob, at, n_before)
            after = _take(blob, at + n_before, n_after)
            at += n_before + n_after
            holes = _take(blob, at, size).split(b"\n")
            at += size
            if len(holes) != n_holes:
                raise ValueError("a packed stream record with the wrong number of holes")
            out.append(_template_events(before, after, holes))
        else:
            raise ValueError(f"a packed stream record of unknown kind {kind!r}")
    return out


def _take(blob: bytes, at: int, size: int) -> bytes:
    if size < 0 or at + size > len(blob):
        raise ValueError("a packed stream record longer than the blob")
    return blob[at : at + size]
