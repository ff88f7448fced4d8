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
  the doubled ``/v1``, an empty ``extra_body`` that never went on the wire, a field set to
  ``null`` versus left out (llama-stack drops the nulls of messages it re-serialises), the host.

Two recording generations name files differently (docs/recording.md):

* the seed generation: ``responses/<first 12 hex of llama_hash>.json``;
* the later one (llama-stack v0.3 onward): ``<per_test_hash>.json``, the full sha256 of the same
  fields plus ``test_id`` (the pytest node id the test sent as ``__test_id``), with the body
  normalised (floats, also inside strings, rounded to 5 places; watsonx's
  ``extra_body.project_id`` and Bedrock's ``stream_options`` left out). Model listings leave
  the test id out on llama-stack's shared endpoints (``/api/tags``, ``/v1/models``,
  ``/v1/openai/v1/models``); at v0.7.1 an OpenAI-compatible listing is at ``/v1/v1/models``,
  so it keeps it.

Ollama's native calls (``/api/ps``, ``/api/tags``, ...) are named as llama-stack's recorder
names the Ollama SDK's calls: method ``POST`` whatever went on the wire, the path as endpoint.

The query string of an API operation (Anthropic's paged ``GET /v1/models?limit=1000&after_id=...``,
Azure's ``api-version``) is part of the identity, sorted, without the parameters that carry
credentials (``identifying_query``): written in the URL, hashed with the path, compared on replay.
llama-stack records at the SDK level, where no query exists, so a request without one is named and
matched exactly as before; and a recording without one (llama-stack's, and relaystack's older
ones) still answers a request with one when no recording of that query exists. Other calls (image
downloads, whose signed links carry tokens and expiry times there) still leave the query out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from relaystack.redaction import MIN_SECRET_LEN, is_key_like_name
from relaystack.upstream.base import UpstreamRequest

__all__ = [
    "KNOWN_OPERATIONS",
    "NATIVE_ENDPOINTS",
    "SHARED_ENDPOINTS",
    "Identity",
    "canonical_body",
    "identifying_query",
    "identity_of_record",
    "identity_of_request",
    "llama_hash",
    "match_key",
    "normalize_path",
    "operation_of",
    "per_test_hash",
]

# the OpenAI operations llama-stack's recorder intercepts, longest suffix first
KNOWN_OPERATIONS = ("/chat/completions", "/completions", "/embeddings", "/models")
# Ollama SDK calls llama-stack records: path on the wire -> the endpoint it writes
NATIVE_ENDPOINTS = {
    "/api/ps": "/api/ps",
    "/api/tags": "/api/tags",
    "/api/pull": "/api/pull",
    "/api/show": "/api/show",
    "/api/generate": "/api/generate",
    "/api/chat": "/api/chat",
    "/api/embed": "/api/embeddings",
}
# endpoints whose recordings are shared by every test (llama-stack hashes them without test id)
SHARED_ENDPOINTS = ("/api/tags", "/v1/models", "/v1/openai/v1/models")
FLOAT_DECIMALS = 5
_DOUBLE_V1 = re.compile(r"(?:/v1)+(?=/|$)")
_FLOAT_IN_STRING = re.compile(r"(-?\d+\.\d{4,})")
# query parameter names that carry credentials beyond the key-like ones (``redaction``): Gemini's
# ``key``, signed links' ``sig``/``signature``, ``token``, Azure Functions' ``code``, and every
# ``X-Amz-*``/``X-Goog-*`` parameter of a pre-signed URL
_CREDENTIAL_PARAMS = frozenset({"key", "sig", "signature", "token", "code", "auth"})
_CREDENTIAL_PREFIXES = ("x-amz-", "x-goog-")


@dataclass(frozen=True, slots=True)
class Identity:
    """A request as llama-stack names it (the ``request`` object of a recording)."""

    method: str
    url: str
    endpoint: str
    body: dict[str, Any]
    model: str
    # the pytest node id of the test that made the call (later generation); None: no test
    test_id: str | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> str:
        """The identifying query string, parameters sorted ('' for none, as in every llama-stack
        recording): a file written by hand in another order names the same request."""
        return _sorted_query(urlsplit(self.url).query) if "?" in self.url else ""

    @property
    def hash(self) -> str:
        return llama_hash(self.method, _with_query(self.path, self.query), self.body)

    @property
    def short_hash(self) -> str:
        """The seed generation's file name."""
        return self.hash[:12]

    @property
    def per_test_hash(self) -> str:
        """The later generation's file name (64 hex)."""
        return per_test_hash(self.method, self.url, self.body, self.test_id)

    @property
    def is_model_list(self) -> bool:
        return self.operation == "/models" or self.endpoint == "/api/tags"

    @property
    def operation(self) -> str | None:
        return operation_of(self.path)

    def match_key(self) -> str:
        return match_key(self.method, _with_query(self.path, self.query), self.body)

    def without_query(self) -> Identity:
        """This request as a recording made without its query string would name it."""
        return dataclasses.replace(self, url=self.url.partition("?")[0]) if self.query else self

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


def per_test_hash(method: str, url: str, body: Any, test_id: str | None) -> str:
    """llama-stack's (v0.3+) ``normalize_inference_request``: see the module docstring."""
    parts = urlsplit(url)
    bedrock = "bedrock" in (parts.hostname or "")
    normalized: dict[str, Any] = {
        "method": method.upper(),
        "endpoint": _with_query(parts.path, _sorted_query(parts.query)),
        "body": _hash_body(body, drop_stream_options=bedrock),
    }
    if parts.path not in SHARED_ENDPOINTS:
        normalized["test_id"] = test_id
    return hashlib.sha256(json.dumps(normalized, sort_keys=True).encode()).hexdigest()


def _hash_body(value: Any, *, drop_stream_options: bool = False, root: bool = True) -> Any:
    if isinstance(value, dict):
        out = {k: _hash_body(v, root=False) for k, v in value.items()}
        if drop_stream_options:
            out.pop("stream_options", None)
        if root:
            for extra in ("extra_body", "extra_query"):
                if isinstance(out.get(extra), dict):
                    out[extra].pop("project_id", None)
        return out
    if isinstance(value, list | tuple):
        return [_hash_body(v, root=False) for v in value]
    if isinstance(value, float):
        return round(value, FLOAT_DECIMALS)
    if isinstance(value, str):
        return _FLOAT_IN_STRING.sub(lambda m: f"{float(m.group(0)):.5f}", value)
    return value


def operation_of(path: str) -> str | None:
    """``/chat/completions`` for any path ending in it (``/v1/...``, ``/openai/v1/...``)."""
    trimmed = path.rstrip("/")
    for op in KNOWN_OPERATIONS:
        if trimmed.endswith(op):
            return op
    return None


def identity_of_request(request: UpstreamRequest, test_id: str | None = None) -> Identity:
    """The identity llama-stack's recorder would give the same call made through the OpenAI SDK
    (or, for Ollama's native API, the Ollama SDK)."""
    parts = urlsplit(request.url)
    path = parts.path.rstrip("/") or "/"
    op = operation_of(path)
    body = _request_body(request)
    native = _native_of(path)
    if native is not None:
        suffix, endpoint = native
        method, llama_path = "POST", path[: -len(suffix)] + endpoint
    elif op is None:
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
    # no userinfo or fragment; of the query, only what identifies an operation (no credentials)
    query = identifying_query(request)
    url = f"{parts.scheme}://{host}{llama_path}" + (f"?{query}" if query else "")
    model = body.get("model") if isinstance(body.get("model"), str) else ""
    return Identity(method=method, url=url, endpoint=endpoint, body=body, model=model or "", test_id=test_id)


def identifying_query(request: UpstreamRequest) -> str:
    """The request's query parameters that identify what it asks for, sorted: every one but those
    named like a credential and those whose value is one of the request's credentials (a header's,
    or one the provider declared). '' for a call that is not an API operation (see the module
    docstring)."""
    parts = urlsplit(request.url)
    query = parts.query
    if not query or operation_of(parts.path) is None:
        return ""
    known = [*request.secrets, *request.headers.values()]
    kept = [(name, value) for name, value in parse_qsl(query, keep_blank_values=True)
            if not _is_credential_param(name, value, known)]
    return urlencode(sorted(kept))  # as _sorted_query writes it


def _is_credential_param(name: str, value: str, known: list[str]) -> bool:
    lowered = name.lower()
    if lowered in _CREDENTIAL_PARAMS or lowered.startswith(_CREDENTIAL_PREFIXES) or is_key_like_name(name):
        return True
    return len(value) >= MIN_SECRET_LEN and any(value in secret for secret in known)


def _sorted_query(query: str) -> str:
    return urlencode(sorted(parse_qsl(query, keep_blank_values=True))) if query else ""


def _with_query(path: str, query: str) -> str:
    """What is hashed and compared as the path: the path, and the query when there is one."""
    return f"{path}?{query}" if query else path


def _native_of(path: str) -> tuple[str, str] | None:
    for suffix, endpoint in NATIVE_ENDPOINTS.items():
        if path.endswith(suffix):
            return suffix, endpoint
    return None


def identity_of_record(request: dict[str, Any], test_id: str | None = None) -> Identity:
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
        test_id=test_id,
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
        return {str(k): _canonical(v) for k, v in value.items() if v is not None}
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
