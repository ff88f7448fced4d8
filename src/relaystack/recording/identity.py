"""What a request *is*, for the recorder: llama-stack's identity and our tolerant match key.

Two different things live here on purpose:

* ``Identity`` is what llama-stack would write and hash for the same call, so the files we
  write are found by llama-stack's reader and the other way round. llama-stack records at
  the OpenAI-SDK level: the method is always ``POST`` (also for ``models.list()``), the
  endpoint is ``/v1/<op>`` and the URL is ``base_url + endpoint``; for a base URL that ends
  in ``/v1`` (Together: ``https://api.together.xyz/v1``) that repeats ``/v1``
  (``.../v1/v1/chat/completions``), and the *hash* covers that doubled path. We write the
  same, so recomputing the shared recordings' names from their request fields works.
* ``match_key`` is what replay compares. It forgives what does not change the upstream's
  answer: JSON key order, float noise (rounded to 5 decimals, like llama-stack HEAD),
  the doubled ``/v1``, an empty ``extra_body`` that never went on the wire, the host.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from relaystack.upstream.base import UpstreamRequest

__all__ = [
    "KNOWN_OPERATIONS",
    "Identity",
    "canonical_body",
    "identity_of_record",
    "identity_of_request",
    "llama_hash",
    "match_key",
    "normalize_path",
    "operation_of",
]

# the OpenAI operations llama-stack's recorder intercepts, longest suffix first
KNOWN_OPERATIONS = ("/chat/completions", "/completions", "/embeddings", "/models")
FLOAT_DECIMALS = 5
_DOUBLE_V1 = re.compile(r"(?:/v1)+(?=/|$)")


@dataclass(frozen=True, slots=True)
class Identity:
    """A request as llama-stack names it (the ``request`` object of a recording)."""

    method: str
    url: str
    endpoint: str
    body: dict[str, Any]
    model: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def hash(self) -> str:
        return llama_hash(self.method, self.path, self.body)

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    @property
    def operation(self) -> str | None:
        return operation_of(self.path)

    def match_key(self) -> str:
        return match_key(self.method, self.path, self.body)

    def to_record(self) -> dict[str, Any]:
        # request headers are never written: see redact.py
        return {
            "method": self.method,
            "url": self.url,
            "headers": {},
            "body": self.body,
            "endpoint": self.endpoint,
            "model": self.model,
        }


def llama_hash(method: str, path: str, body: Any) -> str:
    """llama-stack's ``normalize_request``: sha256 of the sorted JSON of method, path, body."""
    normalized = {"method": method.upper(), "endpoint": path, "body": body}
    return hashlib.sha256(json.dumps(normalized, sort_keys=True).encode()).hexdigest()


def operation_of(path: str) -> str | None:
    """``/chat/completions`` for any path ending in it (``/v1/...``, ``/openai/v1/...``)."""
    trimmed = path.rstrip("/")
    for op in KNOWN_OPERATIONS:
        if trimmed.endswith(op):
            return op
    return None


def identity_of_request(request: UpstreamRequest) -> Identity:
    """The identity llama-stack's recorder would give the same call made through the OpenAI SDK."""
    parts = urlsplit(request.url)
    path = parts.path.rstrip("/") or "/"
    op = operation_of(path)
    body = _request_body(request)
    if op is None:
        method, llama_path, endpoint = request.method.upper(), path, path
    else:
        # llama-stack: url = str(client.base_url).rstrip("/") + "/v1" + op
        method, endpoint = "POST", "/v1" + op
        llama_path = path[: -len(op)] + endpoint
        if op == "/models":
            body = {}
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    # no userinfo, query or fragment: they can carry credentials (?key=...)
    url = f"{parts.scheme}://{host}{llama_path}"
    model = body.get("model") if isinstance(body.get("model"), str) else ""
    return Identity(method=method, url=url, endpoint=endpoint, body=body, model=model or "")


def identity_of_record(request: dict[str, Any]) -> Identity:
    """The identity stored in a recording file (ours or llama-stack's), taken as written."""
    body = request.get("body")
    model = request.get("model")
    if not isinstance(model, str):
        model = body.get("model", "") if isinstance(body, dict) else ""
    return Identity(
        method=str(request.get("method", "POST")).upper(),
        url=str(request.get("url", "")),
        endpoint=str(request.get("endpoint", "")),
        body=body if isinstance(body, dict) else {},
        model=model if isinstance(model, str) else "",
    )


def normalize_path(path: str) -> str:
    """Collapse repeated ``/v1`` segments: ``/v1/v1/chat/completions`` -> ``/v1/chat/completions``."""
    return _DOUBLE_V1.sub("/v1", path.rstrip("/")) or "/"


def match_key(method: str, path: str, body: Any) -> str:
    payload = [method.upper(), normalize_path(path), canonical_body(body)]
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_body(body: Any) -> Any:
    """The body as replay compares it (see the module docstring)."""
    if not isinstance(body, dict):
        return _canonical(body)
    flat = dict(body)
    extra = flat.pop("extra_body", None)
    if isinstance(extra, dict):
        # the SDK merges extra_body into the JSON it sends; an empty one sends nothing
        flat.update(extra)
    elif extra is not None:
        flat["extra_body"] = extra
    return _canonical(flat)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float):
        rounded = round(value, FLOAT_DECIMALS)
        if rounded.is_integer():
            return int(rounded)
        return rounded
    return value


def _request_body(request: UpstreamRequest) -> dict[str, Any]:
    if isinstance(request.json, dict):
        return request.json
    if request.body:
        try:
            parsed = json.loads(request.body)
        except ValueError:
            return {}
        if isinstance(parsed, dict):
            return parsed
    return {}
