"""The ``response`` object of one request as bytes: its echoed settings rendered once.

A streamed response shows its ``response`` object three times (``response.created``,
``response.in_progress``, then ``response.completed`` or another end) and stores it once more;
all but six of its ~30 fields (``status``, ``error``, ``incomplete_details``, ``output``,
``service_tier``, ``usage``) are the request's settings, the same every time. ``ResponseTemplate``
renders those once, with ``orjson``, as the bytes between the six, and ``render`` splices the six
in (the output as the items' JSON already written for their ``output_item.done`` events): one
``bytes.join`` instead of building and encoding the whole object each time. The fields and their
order stay ``response_object``'s (the template is cut from one), so the JSON answer, the stream
and the stored row say the same thing. Requests with the same settings (a client's usual case)
share the pieces after the id and ``created_at``: those are cut once and kept, keyed by the
settings' JSON (``_SETTINGS``: every request field ``response_object`` echoes).
"""

from __future__ import annotations

from typing import Any

import orjson

from relaystack.frontends.responses_output import response_object
from relaystack.storage.base import RenderedResponse

__all__ = ["ResponseTemplate", "event_with_response"]

# the fields a response object's renderings differ in, in the order response_object writes them
_HOLES = ("status", "error", "incomplete_details", "output", "service_tier", "usage")
# what stands in each hole for the one encoding the template is cut from
_MARK = "\x00relaystack:hole\x00"
_MARK_JSON = orjson.dumps(_MARK)
_STATUSES = {status: orjson.dumps(status) for status in ("in_progress", "completed", "incomplete", "failed")}
# the request fields response_object echoes (a test checks it reads no other): the template's
# pieces after the id and created_at depend on these alone
_SETTINGS = (
    "instructions", "max_output_tokens", "max_tool_calls", "metadata", "model", "parallel_tool_calls",
    "previous_response_id", "prompt_cache_key", "reasoning", "safety_identifier", "service_tier", "store",
    "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
)  # fmt: skip
_KEPT = 256  # settings whose pieces are kept; past it the cache starts again
# the settings' JSON -> (the pieces after the first, the request's service_tier)
_PIECES: dict[bytes, tuple[list[bytes], Any]] = {}


def event_with_response(event_type: str, sequence_number: int, response_json: bytes) -> bytes:
    """A ``response.*`` event (created, in_progress, completed, ...) around a rendered response."""
    kind = event_type.encode()
    return b"".join((
        b"event: ", kind, b'\ndata: {"type":"', kind, b'","sequence_number":', str(sequence_number).encode(),
        b',"response":', response_json, b"}\n\n",
    ))  # fmt: skip


class ResponseTemplate:
    """One request's response object with the settings rendered; ``render`` fills in the rest."""

    __slots__ = ("_between", "_service_tier", "created_at", "model", "response_id")

    def __init__(self, response_id: str, created_at: int, body: dict[str, Any]) -> None:
        self.response_id = response_id
        self.created_at = created_at
        self.model: str = body["model"]
        settings = orjson.dumps({key: body[key] for key in _SETTINGS if key in body})
        first = _first_piece(response_id, created_at)
        kept = _PIECES.get(settings)
        if kept is None:
            between, self._service_tier = _pieces(response_id, created_at, body)
            if between[0] == first:
                if len(_PIECES) >= _KEPT:
                    _PIECES.clear()
                _PIECES[settings] = (between[1:], self._service_tier)
            self._between = between
        else:
            self._between = [first, *kept[0]]
            self._service_tier = kept[1]

    def render(
        self,
        status: str,
        output_json: bytes,
        *,
        usage: dict[str, Any] | None = None,
        incomplete: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        service_tier: str | None = None,
    ) -> bytes:
        """The object's JSON: ``output_json`` is the output items' JSON array; ``service_tier`` is
        the tier the upstream says it used (else the request's)."""
        b = self._between
        return b"".join((
            b[0], _STATUSES.get(status) or orjson.dumps(status), b[1], orjson.dumps(error), b[2],
            orjson.dumps(incomplete), b[3], output_json, b[4], orjson.dumps(service_tier or self._service_tier),
            b[5], orjson.dumps(usage), b[6],
        ))  # fmt: skip

    def rendered(self, status: str, output_json: bytes, **fields: Any) -> RenderedResponse:
        """``render``'s bytes with the fields the store keys a row by."""
        data = self.render(status, output_json, **fields)
        return RenderedResponse(self.response_id, self.created_at, self.model, status, data)


def _first_piece(response_id: str, created_at: int) -> bytes:
    """The object's bytes up to its first hole: ``response_object`` opens with these four fields."""
    return b"".join((b'{"id":', orjson.dumps(response_id), b',"object":"response","created_at":',
                     orjson.dumps(created_at), b',"status":'))  # fmt: skip


def _pieces(response_id: str, created_at: int, body: dict[str, Any]) -> tuple[list[bytes], Any]:
    """The object's bytes between its holes, and the request's service tier."""
    shape = response_object(response_id, created_at, body, status="", output=[])
    service_tier = shape["service_tier"]
    for hole in _HOLES:
        shape[hole] = _MARK
    between = orjson.dumps(shape).split(_MARK_JSON)
    # a request's own strings could hold the mark: then it is cut field by field
    return (between if len(between) == len(_HOLES) + 1 else _cut(shape)), service_tier


def _cut(shape: dict[str, Any]) -> list[bytes]:
    """The bytes of ``shape`` before, between and after its ``_HOLES`` values (each piece ending
    with the next hole's ``"name":``), the other fields rendered by one ``orjson.dumps`` per stretch:
    what splitting one encoding at the marks gives, without the marks (and checking the fields' order)."""
    pieces: list[bytes] = []
    holes: list[str] = []
    stretch: dict[str, Any] = {}
    lead = b"{"
    for key, value in shape.items():
        if key not in _HOLES:
            stretch[key] = value
            continue
        members = orjson.dumps(stretch)[1:-1] + b"," if stretch else b""
        pieces.append(lead + members + orjson.dumps(key) + b":")
        holes.append(key)
        stretch, lead = {}, b","
    pieces.append((lead + orjson.dumps(stretch)[1:-1] if stretch else b"") + b"}")
    if tuple(holes) != _HOLES:  # response_object's fields moved: the splice order must follow
        raise AssertionError(f"response_object's varying fields are {holes}, the template expects {_HOLES}")
    return pieces
