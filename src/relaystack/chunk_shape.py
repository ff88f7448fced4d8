"""What a streamed chunk must look like before any client sees it.

Every event the relay forwards is checked against ``Chunk``: valid JSON, an object, and every
field relaystack or a client SDK reads has the right type (``choices`` a list of objects,
``index`` an int, ``delta`` an object, ``content`` a string...). The check is msgspec's typed
decoding: fields relaystack does not read are skipped in C without building objects, which
makes it about twice as cheap as ``orjson.loads`` of the same events (bench/sse_validate.py).
Each event is decoded on its own: decoding a block's events joined into one JSON array is not
cheaper here, and would accept two halves of an object sent as two events.
"""

from __future__ import annotations

from typing import Any

import msgspec

from relaystack.sse import plain_payloads

__all__ = ["CHUNK_DECODER", "Chunk", "ChunkProblem", "decode_event", "decode_plain_block"]


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
ChunkProblem = msgspec.DecodeError  # ValidationError (right JSON, wrong shape) is a subclass
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
    except msgspec.DecodeError:
        return None
