"""Server-sent events: relaystack's one parser and its one ``[DONE]``.

Three places read SSE: the stream relay (``providers/sse_relay.py``), the recorder that keeps
what an upstream streamed (``recording/codec.py``) and the assembly of a stored stream
(``chat_stream.py``). All three use this module:

- ``EventSplitter`` cuts a byte stream, however the network split it, into blocks of whole
  events, with line endings (CRLF, CR) normalised to LF;
- ``payloads`` gives the ``data`` of each event of such a block, as the SSE specification
  reads it: ``data:`` lines (one leading space dropped) joined with LF, comments and other
  fields (``event:``, ``id:``, ``retry:``) ignored, an event without data skipped. Its fast
  path is one ``bytes.split`` for the form every OpenAI-compatible upstream sends (one
  ``data: `` line per event); anything else takes the line-by-line path;
- ``SSECollector`` is the two together, for a consumer that wants every payload and whether
  the stream said ``[DONE]``.

Pure functions and small classes on bytes, importable from any layer.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "DONE",
    "DONE_EVENT",
    "EventSplitter",
    "SSECollector",
    "first_payload",
    "frame",
    "frame_all",
    "is_done",
    "payloads",
    "plain_payloads",
]

# the payload OpenAI sends last, and the event that carries it
DONE = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"

_DATA = b"data: "
_SEPARATOR = b"\n\ndata: "


def frame(payload: bytes) -> bytes:
    """One event: ``data: <payload>\\n\\n`` (the payload must not hold a line break)."""
    return _DATA + payload + b"\n\n"


def frame_all(items: Sequence[bytes]) -> bytes:
    """Several events, framed in one ``join``."""
    return _DATA + _SEPARATOR.join(items) + b"\n\n" if items else b""


def is_done(payload: bytes) -> bool:
    return payload.strip() == DONE


class EventSplitter:
    """Feeds on a byte stream; gives back the whole events received so far, as one block.

    A block always ends at an event boundary (``\\n\\n``) and its line endings are LF, so
    the relay can forward it and ``payloads`` can read it. A CR at the end of one piece and
    an LF at the start of the next are one line ending.
    """

    __slots__ = ("_cr", "_pending")

    def __init__(self) -> None:
        self._pending = b""
        self._cr = False

    def feed(self, chunk: bytes) -> bytes:
        if self._cr or b"\r" in chunk:
            chunk = self._normalise(chunk)
        data = self._pending + chunk if self._pending else chunk
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self._pending = data
            return b""
        self._pending = data[cut + 2 :]
        return data[: cut + 2]

    def close(self) -> bytes:
        """End of stream: an unterminated last event still counts (as a block of its own)."""
        rest, self._pending = self._pending, b""
        if not rest.strip():
            return b""
        return rest + (b"\n" if rest.endswith(b"\n") else b"\n\n")

    def _normalise(self, chunk: bytes) -> bytes:
        if self._cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF whose CR ended the previous piece
        self._cr = chunk.endswith(b"\r")
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def plain_payloads(block: bytes) -> list[bytes] | None:
    """The payloads of a block whose every event is one ``data: `` line; None for any other block."""
    if not block.startswith(_DATA) or not block.endswith(b"\n\n"):
        return None
    # one split of the whole block (no copy of it first); only the ends need trimming
    items = block.split(_SEPARATOR)
    items[0] = items[0][6:]
    items[-1] = items[-1][:-2]
    # no event has a second line (a join and a memchr: cheaper than counting line breaks)
    if b"\n" in b"".join(items):
        return None
    return items


def payloads(block: bytes) -> list[bytes]:
    """The data of each event in a block of whole events (LF line endings), in order."""
    plain = plain_payloads(block)
    if plain is not None:
        return plain
    found: list[bytes] = []
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line:
            if data:
                found.append(b"\n".join(data))
                data = []
        elif line.startswith(b"data"):
            if line == b"data":
                data.append(b"")
            elif line[4:5] == b":":
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # another field whose name starts with "data" (e.g. "database:") is not data
    if data:
        found.append(b"\n".join(data))
    # an event whose data is empty is not dispatched (the SSE specification)
    return [p for p in found if p]


def first_payload(block: bytes) -> bytes | None:
    """The first event's data (cheap for a plain block: no split of the rest)."""
    if block.startswith(_DATA):
        end = block.find(b"\n")
        if end > 0 and block[end : end + 2] == b"\n\n":
            return block[6:end]
    found = payloads(block)
    return found[0] if found else None


class SSECollector:
    """Every ``data:`` payload of an SSE byte stream, however it is split; ``[DONE]`` sets ``done``."""

    __slots__ = ("_splitter", "done", "payloads")

    def __init__(self) -> None:
        self._splitter = EventSplitter()
        self.payloads: list[bytes] = []
        self.done = False

    def feed(self, chunk: bytes) -> None:
        if chunk:
            self._take(self._splitter.feed(chunk))

    def close(self) -> None:
        """End of stream: an unterminated last event still counts."""
        self._take(self._splitter.close())

    def _take(self, block: bytes) -> None:
        if not block:
            return
        for payload in payloads(block):
            if is_done(payload):
                self.done = True
            else:
                self.payloads.append(payload)
