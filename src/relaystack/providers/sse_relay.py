"""Relay an upstream's server-sent events to the client, bytes first.

Parsing every event costs ~20 µs with orjson; a byte relay costs ~0 (bench/README.md).
So events are relayed as the bytes the upstream sent, in the blocks it sent them, with
the few edits relaystack owes the client done as byte substitutions:

- the caller's model id replaces the upstream's in ``"model":"..."``;
- provider fixes declared as byte replacements (e.g. Together's ``completion.chunk``);
- events a provider wants to see parsed (``needs_parse``, e.g. Together's unasked usage)
  go through ``edit_event``; only those are decoded.

It also decides how a stream ended: successfully only after a terminal ``finish_reason``
or the upstream's ``[DONE]``. A stream that stops before either, or carries an error
event, raises, so the client gets an error event and never a fake ``stop``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from relaystack.errors import RelaystackError, UpstreamError, UpstreamProtocolError
from relaystack.upstream.base import UpstreamResponse

__all__ = ["RelayRules", "hidden_events", "relay_sse"]

_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')
_MODEL_KEY = b'"model"'
_FINISH_MARKERS = (b'"finish_reason":"', b'"finish_reason": "')
_ERROR_MARKERS = (b'{"error"', b'{ "error"')
_DONE = b"[DONE]"
_DONE_EVENT = b"data: [DONE]\n\n"
# What ends a stream (a finish_reason, an error, usage) comes in its last events: checks for
# those look at a block's tail only, so a long block is scanned once (by the model rewrite),
# not once per marker. An error event earlier in a block is still relayed verbatim, and the
# OpenAI SDK raises on it.
_TAIL = 8192
_DRAIN_S = 1.0

# gets one parsed event, returns the events to send instead (none, the same, or several)
EventEditor = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass(slots=True)
class RelayRules:
    caller_model: str
    replacements: tuple[tuple[bytes, bytes], ...] = ()
    # a block whose tail holds one of these is split and its events parsed (e.g. b'"usage":{')
    needs_parse: tuple[bytes, ...] = ()
    edit_event: EventEditor | None = None
    # events an editor took out of the client's stream that the stored copy should keep
    hidden: list[dict[str, Any]] = field(default_factory=list)
    _model_bytes: bytes = field(init=False)
    # the upstream's `"model":"..."` field as first seen: later blocks swap it with bytes.replace
    _upstream_field: bytes | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._model_bytes = b'"model":' + orjson.dumps(self.caller_model)


class _StreamState:
    __slots__ = ("done", "finished")

    def __init__(self) -> None:
        self.finished = False
        self.done = False


async def relay_sse(response: UpstreamResponse, rules: RelayRules) -> AsyncIterator[bytes]:
    """Yield framed SSE blocks (without ``[DONE]``); raise if the stream did not finish."""
    state = _StreamState()
    pending = b""
    chunks = response.iter_chunks()
    try:
        async for chunk in chunks:
            data = pending + chunk if pending else chunk
            cut = data.rfind(b"\n\n")
            if cut < 0:
                pending = data
                continue
            pending = data[cut + 2 :]
            out = _process_block(data[: cut + 2], rules, state)
            if out:
                yield out
            if state.done:
                await _drain(chunks)
                return
        if pending.strip():
            out = _process_block(pending + b"\n\n", rules, state)
            if out:
                yield out
    finally:
        await response.aclose()
    if not (state.finished or state.done):
        raise UpstreamProtocolError(
            "The upstream stream ended before it finished (no finish_reason and no [DONE]); "
            "the answer is incomplete."
        )


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows [DONE] (the end of the chunked body) so the connection goes back to
    the pool instead of being closed; give up quickly on an upstream that keeps it open."""
    try:
        async with asyncio.timeout(_DRAIN_S):
            async for _ in chunks:
                pass
    except (TimeoutError, RelaystackError):
        pass


def _process_block(block: bytes, rules: RelayRules, state: _StreamState) -> bytes:
    if block.endswith(_DONE_EVENT) and (block == _DONE_EVENT or block.endswith(b"\n\n" + _DONE_EVENT)):
        state.done = True
        block = block[: -len(_DONE_EVENT)]
        if not block:
            return b""
    tail = block[-_TAIL:]
    if (
        b"\r" in block
        or not block.startswith(b"data:")
        or any(marker in tail for marker in _ERROR_MARKERS)
        or any(marker in tail for marker in rules.needs_parse)
    ):
        return b"".join(_process_event(e, rules, state) for e in _split_events(block))
    return _rewrite(block, rules, state)


def _rewrite(block: bytes, rules: RelayRules, state: _StreamState) -> bytes:
    block = _rewrite_model(block, rules)
    for old, new in rules.replacements:
        block = block.replace(old, new)
    if not state.finished and any(marker in block[-_TAIL:] for marker in _FINISH_MARKERS):
        state.finished = True
    return block


def _rewrite_model(block: bytes, rules: RelayRules) -> bytes:
    """Every `"model":"..."` field becomes the caller's id: bytes.replace when all fields in the
    block are the one seen first (always, in practice), a regex otherwise."""
    if rules._upstream_field is None:
        start = block.find(_MODEL_KEY)
        found = _MODEL_FIELD.match(block, start) if start >= 0 else None
        if found is None:
            return block
        rules._upstream_field = found.group(0)
    upstream_field = rules._upstream_field
    fields = block.count(_MODEL_KEY)
    if fields == 0:
        return block
    if block.count(upstream_field) == fields:
        return block if upstream_field == rules._model_bytes else block.replace(upstream_field, rules._model_bytes)
    return _MODEL_FIELD.sub(rules._model_bytes.replace(b"\\", b"\\\\"), block)


def _split_events(block: bytes) -> list[bytes]:
    return [e for e in block.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n") if e.strip()]


def _process_event(event: bytes, rules: RelayRules, state: _StreamState) -> bytes:
    data_lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    if not data_lines:
        return b""  # comments, keep-alives, bare event:/id: lines
    payload = b"\n".join(data_lines)
    if payload.strip() == _DONE:
        state.done = True
        return b""
    editable = rules.edit_event is not None and any(marker in payload for marker in rules.needs_parse)
    if not editable and not any(marker in payload for marker in _ERROR_MARKERS):
        return _rewrite(b"data: " + payload + b"\n\n", rules, state)
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("The upstream sent a malformed stream event (not JSON).") from None
    if not isinstance(parsed, dict):
        raise UpstreamProtocolError("The upstream sent a stream event that is not a JSON object.")
    if "error" in parsed and "choices" not in parsed:
        raise _upstream_stream_error(parsed["error"])
    if editable and rules.edit_event is not None:
        framed = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in rules.edit_event(parsed))
        return _rewrite(framed, rules, state) if framed else b""
    return _rewrite(b"data: " + payload + b"\n\n", rules, state)


def hidden_events(rules: RelayRules) -> bytes:
    return b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in rules.hidden)


def _upstream_stream_error(error: Any) -> RelaystackError:
    if isinstance(error, dict):
        message = str(error.get("message") or "The upstream reported an error mid-stream.")
        code = error.get("code")
        given = error.get("status")
        status = given if isinstance(given, int) and 400 <= given <= 599 else 502
        return UpstreamError(
            f"Upstream error mid-stream: {message}", status=status, type=error.get("type"),
            code=str(code) if code is not None else None,
        )
    return UpstreamError(f"Upstream error mid-stream: {error}", status=502)
