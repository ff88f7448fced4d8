"""A JSON answer relayed as the upstream's own bytes, with the caller's model id put in place.

Re-serialising an answer only to change its ``model`` costs more than everything else relaystack
does with it (a 1,536-float embedding: ~55 µs to parse and dump; a batch of 32: ~6 ms), so:

- a chat or text completion is parsed (it is checked: a JSON object; and it is stored), but sent
  as the upstream wrote it: its one ``"model": "..."`` field is swapped in the bytes;
- an embeddings answer is not parsed at all: only the few bytes before and after its ``"data"``
  array (where ``object``, ``model`` and ``usage`` live) are, and the array is relayed untouched,
  as the raw relay would. Its HTTP framing (the body's length) still guards against a truncated
  answer.

Either falls back to the parsed object (``JsonReply(data)``, serialised by the API layer) when
the layout is not the one expected: no ``model`` field, a second one, usage inside the array...
Each fast path is exact: it touches a field only where it has proved the field is the top-level one.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from relaystack.errors import UpstreamProtocolError
from relaystack.providers.base import JsonReply

__all__ = ["parse_answer", "relay_completion", "relay_embeddings", "swap_model_field"]

_MODEL_KEY = b'"model"'
_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')
_DATA_ARRAY = re.compile(rb'"data"\s*:\s*\[')


def parse_answer(raw: bytes, provider_id: str) -> dict[str, Any]:
    """The upstream's answer as a JSON object, or ``UpstreamProtocolError``."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(
            f"Provider '{provider_id}' answered with a body that is not JSON."
        ) from None
    if not isinstance(data, dict):
        raise UpstreamProtocolError(f"Provider '{provider_id}' answered with JSON that is not an object.")
    return data


def relay_completion(raw: bytes, caller_model: str, provider_id: str) -> JsonReply:
    """A chat or text completion: checked, its ``model`` the caller's, its bytes kept when they can be."""
    data = parse_answer(raw, provider_id)
    upstream_model = data.get("model")
    data["model"] = caller_model
    if upstream_model == caller_model:
        return JsonReply(data, raw=raw)
    swapped = swap_model_field(raw, upstream_model, caller_model) if isinstance(upstream_model, str) else None
    return JsonReply(data, raw=swapped) if swapped is not None else JsonReply(data)


def swap_model_field(raw: bytes, old: str, new: str) -> bytes | None:
    """``raw`` with its ``"model": "<old>"`` field holding ``new``; None unless that field is the
    only ``"model"`` key in the bytes (then it is the top-level one: a key cannot hide in a string,
    whose quotes are escaped)."""
    if raw.count(_MODEL_KEY) != 1:
        return None
    found = _MODEL_FIELD.match(raw, raw.find(_MODEL_KEY))
    if found is None or orjson.loads(found.group(0)[found.group(0).index(b":") + 1:]) != old:
        return None
    return raw[: found.start()] + b'"model":' + orjson.dumps(new) + raw[found.end():]


def relay_embeddings(raw: bytes, caller_model: str) -> JsonReply | None:
    """An embeddings answer relayed without parsing its ``data`` array; None when its layout is not
    ``{<fields>, "data": [...], <fields>}`` with ``model`` and ``usage`` among the fields around
    the array (the caller then parses it whole)."""
    parts = _around_data(raw)
    if parts is None:
        return None
    head, middle, tail, head_bytes, tail_bytes = parts
    in_head, in_tail = "model" in head, "model" in tail
    usage = tail.get("usage", head.get("usage"))
    if in_head == in_tail or not isinstance(usage, dict):
        return None  # no model field around the array (or one on each side), or no usage there
    if (head if in_head else tail)["model"] != caller_model:
        if in_head:
            head_bytes = orjson.dumps({**head, "model": caller_model})[:-1] + b","
        else:
            tail_bytes = b"," + orjson.dumps({**tail, "model": caller_model})[1:]
        raw = head_bytes + middle + tail_bytes
    return JsonReply(raw=raw, usage=usage)


def _around_data(raw: bytes) -> tuple[dict[str, Any], bytes, dict[str, Any], bytes, bytes] | None:
    """(fields before the data array, the array's bytes, fields after it, and the bytes of both)."""
    start = raw.find(b'"data"')
    end = raw.rfind(b"]")
    if start < 0 or end < start or _DATA_ARRAY.match(raw, start) is None:
        return None
    head_bytes, tail_bytes = raw[:start], raw[end + 1:]
    head = _fields(head_bytes.strip(), before=True)
    tail = _fields(tail_bytes.strip(), before=False)
    if head is None or tail is None:
        return None
    return head, raw[start:end + 1], tail, head_bytes, tail_bytes


def _fields(part: bytes, *, before: bool) -> dict[str, Any] | None:
    """The object fields in ``part``: ``{`` [fields ``,``] before the array, [``,`` fields] ``}``
    after it; None if ``part`` is not exactly that."""
    if part == (b"{" if before else b"}"):
        return {}
    if before and part.startswith(b"{") and part.endswith(b","):
        whole = part[:-1] + b"}"
    elif not before and part.startswith(b",") and part.endswith(b"}"):
        whole = b"{" + part[1:]
    else:
        return None
    try:
        parsed = orjson.loads(whole)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
