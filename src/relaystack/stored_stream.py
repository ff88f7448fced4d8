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

A ``T`` record stands for ``data: before+hole+after\\n\\n`` for each hole, in order. Packing is
exact by construction: a stretch is packed only after its expansion was compared with the bytes
the client got (``pack_events``), so a stored row reads back byte for byte what was sent,
redactions and the caller's model id included. Anything else (a block the relay re-framed, a
stretch with a tool call in it, a stream without a template) is an ``R`` record, as sent.

A blob that starts with ``data:`` is the older form (events as sent), still read as it is.
Pure functions on bytes, importable from any layer.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

__all__ = ["MAGIC", "expand", "first_payload_of_packed", "is_packed", "pack_events", "pack_sent", "packed",
           "raw_record"]

MAGIC = b"relaystack-stream/1\n"
_DATA = b"data: "
_BOUNDARY = b"\n\ndata: "
# fewer template events than this in a stretch are kept as sent (a header costs ~20 bytes)
_MIN_RUN = 4


def is_packed(blob: bytes) -> bool:
    return blob.startswith(MAGIC)


def packed(records: Sequence[bytes], events: Sequence[bytes]) -> bytes:
    """The stored blob of a stream's records (``raw_record`` and ``pack_events`` make them); the
    ``events`` as sent, joined (the older form, cheaper to read) when no record packs anything."""
    if not any(record.startswith(b"T") for record in records):
        return b"".join(events)
    return MAGIC + b"".join(records)


def raw_record(events: bytes) -> bytes:
    return b"R%d\n" % len(events) + events


def pack_events(events: bytes, payloads: list[bytes], template: tuple[bytes, bytes],
                sent: tuple[bytes, bytes]) -> list[bytes]:
    """The records of ``events`` (framed, as the client got them).

    ``payloads``: the same events as the upstream sent them, split (before the relay's byte edits);
    ``template``: the upstream's ``(before, after)`` around a text event's content; ``sent``: the
    template as the client got it (the edits applied to it). The longest stretch of template events
    after the first non-template ones and before the last ones becomes one ``T`` record if its
    expansion equals the client's bytes exactly; the rest stays as sent."""
    before, after = template
    count = len(payloads)
    first = 0
    while first < count and not _fits(payloads[first], before, after):
        first += 1
    last = count
    while last > first and not _fits(payloads[last - 1], before, after):
        last -= 1
    if last - first < _MIN_RUN or not after:
        return [raw_record(events)]
    start = _event_end(events, first)
    end = _event_start_from_end(events, count - last)
    if start < 0 or end < 0:
        return [raw_record(events)]
    holes = list(map(operator.itemgetter(slice(len(before), -len(after))), payloads[first:last]))
    if not _rebuilds(events, start, end, holes, sent):
        # an edit reached into a hole (a secret redacted in the text) or a stretch holds another
        # event: the careful way, event by event on the client's bytes
        return pack_sent(events, sent)
    records = [raw_record(events[:start])] if start else []
    records.append(_run_record(holes, sent))
    if end < len(events):
        records.append(raw_record(events[end:]))
    return records


def pack_sent(events: bytes, sent: tuple[bytes, bytes]) -> list[bytes]:
    """The records of ``events`` read one by one (~0.4 µs an event): each run of events that are
    the sent template around a hole becomes a ``T`` record, everything else stays as sent."""
    if not (events.startswith(_DATA) and events.endswith(b"\n\n")):
        return [raw_record(events)]
    before, after = sent
    items = events[len(_DATA) : -2].split(_BOUNDARY)
    fits = [_fits(item, before, after) and b"\n" not in item for item in items]
    records: list[bytes] = []
    start = 0
    while start < len(items):
        end = start + 1
        while end < len(items) and fits[end] == fits[start]:
            end += 1
        if fits[start] and end - start >= _MIN_RUN:
            records.append(_run_record([item[len(before) : len(item) - len(after)] for item in items[start:end]], sent))
        else:
            records.append(raw_record(_DATA + _BOUNDARY.join(items[start:end]) + b"\n\n"))
        start = end
    return records


def _run_record(holes: list[bytes], sent: tuple[bytes, bytes]) -> bytes:
    before, after = sent
    joined = b"\n".join(holes)
    if joined.count(b"\n") != len(holes) - 1:  # a hole with a line break would not split back
        return raw_record(_DATA + (after + _BOUNDARY + before).join(holes) + after + b"\n\n")
    return b"T%d %d %d %d\n" % (len(before), len(after), len(holes), len(joined)) + before + after + joined


def _fits(payload: bytes, before: bytes, after: bytes) -> bool:
    return len(payload) >= len(before) + len(after) and payload.startswith(before) and payload.endswith(after)


def _event_end(events: bytes, skipped: int) -> int:
    """Where event ``skipped`` starts (0 for the first), -1 if the block has fewer."""
    at = 0
    for _ in range(skipped):
        at = events.find(_BOUNDARY, at)
        if at < 0:
            return -1
        at += 2
    return at


def _event_start_from_end(events: bytes, kept: int) -> int:
    """Where the last ``kept`` events start (the block's length for none)."""
    at = len(events)
    for _ in range(kept):
        at = events.rfind(_BOUNDARY, 0, at - 2)
        if at < 0:
            return -1
        at += 2
    return at


def _rebuilds(events: bytes, start: int, end: int, holes: list[bytes], sent: tuple[bytes, bytes]) -> bool:
    """The client's bytes from ``start`` to ``end`` are the holes in the sent template, exactly."""
    before, after = sent
    middle = (after + _BOUNDARY + before).join(holes)
    if end - start != len(_DATA) + len(before) + len(middle) + len(after) + 2:
        return False
    at = start + len(_DATA) + len(before)
    return (events.startswith(_DATA + before, start) and events.startswith(middle, at)
            and events.startswith(after + b"\n\n", at + len(middle)))


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
            out.append(_DATA + before + (after + _BOUNDARY + before).join(holes) + after + b"\n\n")
        else:
            raise ValueError(f"a packed stream record of unknown kind {kind!r}")
    return out


def _take(blob: bytes, at: int, size: int) -> bytes:
    if size < 0 or at + size > len(blob):
        raise ValueError("a packed stream record longer than the blob")
    return blob[at : at + size]
