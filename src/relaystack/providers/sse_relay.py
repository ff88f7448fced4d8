"""Relay an upstream's server-sent events to the client: checked, then forwarded as bytes.

The stream is cut into blocks of whole events (``sse.EventSplitter``) as the upstream
delivers it. Every event of a block is checked against the chunk shape before any byte of
the block reaches the client (``chunk_shape``: a msgspec decode per event, skipping the
fields nobody reads; text events alike but for their text are proven valid against a
template of the first instead: ``chunk_shape.StreamCheck``). A block that passes is forwarded
as the upstream's own bytes, with the edits relaystack owes the client done as byte
substitutions:

- the caller's model id replaces the upstream's in ``"model":"..."``;
- provider fixes declared as byte replacements (e.g. Together's ``completion.chunk``);
- every form of the call's secrets an upstream could echo becomes ``[REDACTED]``.

A block that does not pass (comments, multi-line events, ``[DONE]``, an error event, a
malformed event) is read event by event: ``[DONE]`` ends the stream, an error event or a
malformed one raises (an ``UpstreamError`` with the upstream's scrubbed message, or an
``UpstreamProtocolError`` naming the problem), and the valid events are re-framed one per line.

An upstream whose events are not OpenAI chunks (watsonx's text generation) declares
``translate``: each event is parsed, translated to chunks, and the chunks are checked and
framed like any other (the slow path for every block).

Usage, as a rule any provider can use: with ``strip_usage`` (the client did not ask for
usage; the provider asked the upstream, or the upstream sends it anyway) usage is taken out
of the client's stream and the last one kept for storage (``hidden_events``) and accounting
(``usage``); with ``split_usage`` (the client asked, the upstream puts usage on chunks with
choices: Together on the finishing one, Gemini on every one) usage is taken off those chunks
and sent once, as OpenAI does: a chunk without choices right after the finishing chunk.

The store keeps what the client got, with the stretches of template text events packed
(``stored_form``, ``relaystack.stored_stream``). The check's walk hands back each proven stretch's
holes, so a block's stored parts are taken as it is relayed, without a second walk of the stream:
when its only edit was the model id (no provider replacement, no secret found), an event of a
stretch is the client's template around the upstream's hole, and the bytes between stretches get
the same swap. A block edited otherwise is walked again in the bytes the client got.

A stream ends successfully only after the upstream's ``[DONE]`` or when its last chunk with
choices carries a ``finish_reason``; otherwise ``blocks()`` raises, so the client gets an error
event and never a fake ``stop``.
"""

from __future__ import annotations

import asyncio
import operator
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from relaystack import sse, stored_stream
from relaystack.chunk_shape import Chunk, ChunkProblem, StreamCheck, decode_event
from relaystack.errors import RelaystackError, UpstreamError, UpstreamProtocolError
from relaystack.redaction import Redactor
from relaystack.text_template import Template
from relaystack.upstream.base import UpstreamResponse

__all__ = ["MALFORMED_EVENT", "EventTranslator", "RelayRules", "SSERelay"]

# the error code of a stream failed by a malformed upstream event
MALFORMED_EVENT = "upstream_malformed_event"

_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')
_MODEL_KEY = b'"model"'
_DRAIN_S = 1.0
# a plain block's event is `data: <payload>\n\n`: the bytes around a decoded payload's span
_EVENT_HEAD, _EVENT_TAIL = len(b"data: "), len(b"\n\n")
_usage = operator.attrgetter("usage")

# gets one parsed upstream event (a JSON object), returns the OpenAI chunks it amounts to
EventTranslator = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass(slots=True)
class RelayRules:
    caller_model: str
    replacements: tuple[tuple[bytes, bytes], ...] = ()
    # the client did not ask for usage: keep it out of its stream (stored and counted still)
    strip_usage: bool = False
    # the client asked, and the upstream puts usage on chunks with choices: one usage chunk
    # (no choices) follows the finishing chunk instead
    split_usage: bool = False
    # the upstream's events are not OpenAI chunks: each is translated before it is checked
    translate: EventTranslator | None = None
    # the call's secrets (``Provider.secrets``): scrubbed from every block and error event
    redactor: Redactor = field(default_factory=Redactor)


class SSERelay:
    """One relayed stream: ``blocks()`` to iterate, then ``usage`` and ``hidden_events()``."""

    def __init__(self, response: UpstreamResponse, rules: RelayRules) -> None:
        self._response = response
        self.rules = rules
        self.done = False
        self.finished = False
        # the usage object of the last chunk that carried one
        self.usage: dict[str, Any] | None = None
        self._hidden: list[bytes] = []
        # the stored form of the blocks yielded so far (``stored_form``); None once nobody will store it
        self._parts: list[stored_stream.Part] | None = []
        # the last block's model-id rewrite: True when it was a plain swap of one field for another
        # (``_swap``: the (upstream, caller) fields replaced everywhere, None: nothing replaced)
        self._plain_swap = True
        self._swap: tuple[bytes, bytes] | None = None
        self._caller_field = b'"model":' + orjson.dumps(rules.caller_model)
        # the upstream's `"model":"..."` field as first seen: later blocks swap it with bytes.replace
        self._upstream_field: bytes | None = None
        # the stream's text events proven against a template of the first (chunk_shape.StreamCheck)
        self._stream_check = StreamCheck(keep_holes=True)
        self._check_plain = self._stream_check.plain_block
        # the template the upstream's model field was last counted in, and its count
        self._template_fields: tuple[Template | None, int] = (None, 0)

    async def blocks(self) -> AsyncIterator[bytes]:
        """Framed SSE blocks (without ``[DONE]``); raises if the stream did not finish."""
        splitter = sse.EventSplitter()
        chunks = self._response.iter_chunks()
        try:
            async for piece in chunks:
                block = splitter.feed(piece)
                if not block:
                    continue
                out = self._process(block)
                if out:
                    yield out
                if self.done:
                    if not getattr(self._response, "complete", False):  # the body's end is still to come
                        await _drain(chunks)
                    return
            rest = splitter.close()
            if rest:
                out = self._process(rest)
                if out:
                    yield out
        finally:
            await self._response.aclose()
        if not (self.finished or self.done):
            raise UpstreamProtocolError(
                "The upstream stream ended before it finished (no finish_reason and no [DONE]); "
                "the answer is incomplete."
            )

    def stored_form(self, hidden: bytes) -> bytes:
        """The stored form of the blocks yielded (as the client got them), then ``hidden`` (the events the
        client was not shown): the stretches of template text events packed (``relaystack.stored_stream``)."""
        if self._parts is None:
            raise RuntimeError("stored_form after forgo_stored: the stream's parts were not kept")
        return stored_stream.packed([*self._parts, hidden])

    def forgo_stored(self) -> None:
        """The stream will not be stored: keep nothing for it from now on."""
        self._parts = None
        self._stream_check.stop_taking_holes()

    def hidden_events(self) -> bytes:
        """Events the client was not shown that the stored copy keeps (e.g. usage it did not ask for)."""
        return self._finish_bytes(sse.frame_all(self._hidden), len(self._hidden)) if self._hidden else b""

    # -- one block -------------------------------------------------------------------------------
    def _process(self, block: bytes) -> bytes:
        if block.endswith(sse.DONE_EVENT) and (block == sse.DONE_EVENT or block.endswith(b"\n\n" + sse.DONE_EVENT)):
            self.done = True
            block = block[: -len(sse.DONE_EVENT)]
            if not block:
                return b""
        plain = self._check_plain(block) if self.rules.translate is None else None
        proven: list[tuple[int, int, int]] = []
        if plain is not None:
            payloads, chunks = plain
            proven = self._stream_check.proven_spans
            # the chunks the walk decoded: a proven event's chunk is the template's, which has no usage
            decoded = self._stream_check.decoded
        else:  # re-framed below: one line per event
            payloads, chunks = self._read_slowly(block)
            decoded, block = None, b""
            if not chunks:
                return b""
        self._note_finish(chunks)
        carriers = chunks if decoded is None else decoded
        events = len(chunks)
        if any(map(_usage, carriers)):  # in C: no list of 500 Nones
            self.usage = next(c.usage for c in reversed(carriers) if c.usage is not None)
            if (self.rules.strip_usage or self.rules.split_usage) and decoded is not None and block:
                block, events, proven = self._splice_usage(block, decoded, proven)
                if not block:
                    return b""
            elif self.rules.strip_usage or self.rules.split_usage:
                payloads = self._edit_usage(list(payloads), list(map(_usage, chunks)))
                block, proven = b"", []
        if not block:
            block = sse.frame_all(payloads)
            if not block:
                return b""
            events = len(payloads)
        return self._finish_block(block, events, proven)

    def _splice_usage(self, block: bytes, decoded: list[Chunk],
                      proven: list[tuple[int, int, int]]) -> tuple[bytes, int, list[tuple[int, int, int]]]:
        """``_edit_usage`` on the few events that carry usage, spliced into the block in place (a
        proven event has none): the block, its number of events, and the proven stretches before
        the first edit (their offsets unchanged)."""
        pieces: list[bytes] = []
        cursor, first = 0, len(block)
        events = sum(count for _, _, count in proven) + len(decoded)
        for (start, end), chunk in zip(self._stream_check.decoded_at, decoded, strict=True):
            if chunk.usage is None:
                continue
            edited = self._edit_usage([block[start:end]], [chunk.usage])
            pieces += (block[cursor : start - _EVENT_HEAD], sse.frame_all(edited))
            cursor, first = end + _EVENT_TAIL, min(first, start - _EVENT_HEAD)
            events += len(edited) - 1
        pieces.append(block[cursor:])
        # a stretch ends where the payload after it starts: it is whole when that event starts by the first edit
        return b"".join(pieces), events, [span for span in proven if span[1] - _EVENT_HEAD <= first]

    def _note_finish(self, chunks: list[Chunk]) -> None:
        for chunk in reversed(chunks):
            if chunk.choices:
                self.finished = any(choice.finish_reason for choice in chunk.choices)
                return

    def _read_slowly(self, block: bytes) -> tuple[list[bytes], list[Chunk]]:
        """Event by event: stops at ``[DONE]``, raises on an error event or a malformed one."""
        kept: list[bytes] = []
        chunks: list[Chunk] = []
        for payload in sse.payloads(block):
            if sse.is_done(payload):
                self.done = True
                break
            if self.rules.translate is not None:
                for translated in self._translate(payload):
                    chunks.append(self._check(translated))
                    kept.append(translated)
                continue
            chunks.append(self._check(payload))
            # a multi-line event's line breaks can only be JSON whitespace: one line for the client
            kept.append(payload.replace(b"\n", b" ") if b"\n" in payload else payload)
        return kept, chunks

    def _translate(self, payload: bytes) -> list[bytes]:
        """A foreign event as the payloads of the OpenAI chunks it amounts to."""
        assert self.rules.translate is not None
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                "The upstream sent a malformed stream event (not JSON).", code=MALFORMED_EVENT
            ) from None
        if not isinstance(event, dict):
            raise UpstreamProtocolError(
                "The upstream sent a stream event that is not a JSON object.", code=MALFORMED_EVENT
            )
        if event.get("error") is not None:
            raise self.rules.redactor.error(_upstream_stream_error(event["error"]))
        return [orjson.dumps(chunk) for chunk in self.rules.translate(event)]

    def _check(self, payload: bytes) -> Chunk:
        try:
            return decode_event(payload)
        except ChunkProblem as exc:
            problem = str(exc)
        try:
            parsed = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                "The upstream sent a malformed stream event (not JSON).", code=MALFORMED_EVENT
            ) from None
        if isinstance(parsed, dict) and parsed.get("error") is not None:
            raise self.rules.redactor.error(_upstream_stream_error(parsed["error"]))
        raise UpstreamProtocolError(
            f"The upstream sent a stream event of the wrong shape: {problem}.", code=MALFORMED_EVENT
        )

    def _edit_usage(self, payloads: list[bytes], usages: list[dict[str, Any] | None]) -> list[bytes]:
        edited: list[bytes] = []
        for payload, usage in zip(payloads, usages, strict=True):
            if usage is None:
                edited.append(payload)
                continue
            event = orjson.loads(payload)
            choices = event.get("choices")
            trailer = {k: event[k] for k in ("id", "object", "created", "model") if k in event}
            usage_event = orjson.dumps({**trailer, "choices": [], "usage": usage}) if choices else payload
            if choices:
                event["usage"] = None
                edited.append(orjson.dumps(event))
            if self.rules.strip_usage:
                self._hidden[:] = [usage_event]  # the last usage is the stream's
            elif not choices or any(isinstance(c, dict) and c.get("finish_reason") for c in choices):
                edited.append(usage_event)
        return edited

    # -- byte edits ------------------------------------------------------------------------------
    def _finish_block(self, block: bytes, events: int, proven: list[tuple[int, int, int]]) -> bytes:
        """``_finish_bytes`` for a block the client gets; its stored parts noted (``stored_form``)."""
        edited = self._edited(block, events, proven)
        sent = self.rules.redactor.wire(edited)
        parts = self._parts
        if parts is None or not sent:
            return sent
        template = self._stream_check.template
        if not proven or template is None:
            parts.append(sent)
        elif self._plain_swap and sent is edited and not self.rules.replacements and \
                len(self._stream_check.proven_holes) >= len(proven):  # a usage edit keeps the stretches before it
            parts += self._taken_parts(block, sent, proven, template)
        else:  # edited beyond the model id: the stretches proven again in the bytes sent
            parts += stored_stream.parts_of(sent, self._template_sent(template))
        return sent

    def _taken_parts(self, block: bytes, sent: bytes, proven: list[tuple[int, int, int]],
                     template: Template) -> list[stored_stream.Part]:
        """The stored parts of a block whose only edit was the model id: each proven stretch the
        client's template around the holes the check's walk took, the bytes between with the swap.
        (The upstream's field cannot sit in a hole, a JSON string's inside, nor reach into one: the
        argument ``_count_fields`` rests on.) Checked by length: else the block sent, as it is."""
        swap = self._swap

        def as_sent(raw: bytes) -> bytes:
            return raw if swap is None else raw.replace(*swap)

        before, after = as_sent(template.before), as_sent(template.after)
        parts: list[stored_stream.Part] = []
        at, size = 0, len(block)
        for (start, end, count), holes in zip(proven, self._stream_check.proven_holes[: len(proven)], strict=True):
            if at < start - _EVENT_HEAD:
                parts.append(as_sent(block[at : start - _EVENT_HEAD]))
            parts.append(stored_stream.Stretch(before, after, count, holes))
            at = end - _EVENT_HEAD if end < size else size
        if at < size:
            parts.append(as_sent(block[at:]))
        total = sum(len(part) if isinstance(part, bytes) else part.size() for part in parts)
        return parts if total == len(sent) else [sent]

    def _template_sent(self, template: Template) -> tuple[bytes, bytes]:
        """The template's ``(before, after)`` as the client gets it (every byte edit applied)."""
        return self._finish_bytes(template.before, 0), self._finish_bytes(template.after, 0)

    def _finish_bytes(self, block: bytes, events: int, proven: list[tuple[int, int, int]] | None = None) -> bytes:
        return self.rules.redactor.wire(self._edited(block, events, proven or []))

    def _edited(self, block: bytes, events: int, proven: list[tuple[int, int, int]]) -> bytes:
        """The block with the caller's model id and the provider's byte fixes (secrets not yet scrubbed)."""
        block = self._rewrite_model(block, events, proven)
        for old, new in self.rules.replacements:
            block = block.replace(old, new)
        return block

    def _rewrite_model(self, block: bytes, events: int, proven: list[tuple[int, int, int]]) -> bytes:
        """(``events`` 0: a piece of an event, e.g. a template: a plain replace of the field as first seen.)
        Every `"model":"..."` field becomes the caller's id: one bytes.replace when each event
        holds the upstream's field as first seen (checked by the length it adds, or counted), a regex otherwise."""
        self._plain_swap, self._swap = True, None
        if self._upstream_field is None:
            start = block.find(_MODEL_KEY)
            found = _MODEL_FIELD.match(block, start) if start >= 0 else None
            if found is None:
                return block
            self._upstream_field = found.group(0)
        upstream, caller = self._upstream_field, self._caller_field
        if not events:
            self._swap = (upstream, caller) if upstream != caller else None
            return block.replace(upstream, caller)
        if len(upstream) == len(caller):  # the length a replace adds cannot tell: count the fields
            if self._count_fields(block, proven) == events:
                if upstream == caller:
                    return block
                self._swap = (upstream, caller)
                return block.replace(upstream, caller)
        else:
            replaced = block.replace(upstream, caller)
            if len(replaced) - len(block) == events * (len(caller) - len(upstream)):
                self._swap = (upstream, caller)
                return replaced
        self._plain_swap = False
        return _MODEL_FIELD.sub(caller.replace(b"\\", b"\\\\"), block)

    def _count_fields(self, block: bytes, proven: list[tuple[int, int, int]]) -> int:
        """The upstream's model field's occurrences in ``block``, counted only outside the ``proven``
        stretches (``chunk_shape.StreamCheck.proven_spans``): an event there is the template with a
        JSON string in its hole, and a JSON string cannot hold (nor complete) an unescaped
        ``"model":"``, so it holds the field as often as the template does around its hole."""
        upstream = self._upstream_field
        assert upstream is not None
        if not proven or self._fields_per_template(upstream) != 1:
            return block.count(upstream)
        count, at = 0, 0
        for start, end, events in proven:
            count += block.count(upstream, at, start) + events
            at = end
        return count + block.count(upstream, at)

    def _fields_per_template(self, upstream: bytes) -> int:
        """How often the template (as the upstream sent it) holds the upstream's model field."""
        template = self._stream_check.template
        if template is None:
            return 0
        if self._template_fields[0] is not template:
            self._template_fields = (template, template.before.count(upstream) + template.after.count(upstream))
        return self._template_fields[1]

async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows [DONE] (the end of the chunked body) so the connection goes back to
    the pool instead of being closed; give up quickly on an upstream that keeps it open."""
    try:
        async with asyncio.timeout(_DRAIN_S):
            async for _ in chunks:
                pass
    except (TimeoutError, RelaystackError):
        pass


def _upstream_stream_error(error: Any) -> RelaystackError:
    if isinstance(error, dict):
        message = str(error.get("message") or "The upstream reported an error mid-stream.")
        code = error.get("code")
        given = error.get("status")
        status = given if isinstance(given, int) and 400 <= given <= 599 else 502
        kind = error.get("type")
        return UpstreamError(
            f"Upstream error mid-stream: {message[:2000]}", status=status,
            type=kind if isinstance(kind, str) else None, code=str(code) if code is not None else None,
        )
    return UpstreamError(f"Upstream error mid-stream: {str(error)[:2000]}", status=502)
