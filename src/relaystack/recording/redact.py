"""Keeping credentials out of recordings.

Recordings are committed to git, so a leaked key is public forever. Defence in depth:

1. request headers are never written (``"headers": {}``), the URL loses userinfo and every
   query parameter but an API operation's identifying ones (``identity.identifying_query``);
2. every credential the request carried (``Authorization``, ``api-key``-style headers,
   every string in ``X-LlamaStack-Provider-Data``, every query value that is not identifying,
   key-like body fields) is collected and scrubbed from everything written, in every encoding an
   upstream might echo it in (raw, JSON-escaped, URL-encoded, base64 at any alignment);
3. values of key-like JSON fields (``api_key``, ``authorization``, ``client_secret``...)
   and shapes that look like keys anywhere (``sk-...``, ``Bearer ...``) are replaced too;
4. the persister scans the final text and refuses to write if anything is left.

``find_secrets`` is the same scan for files already on disk (``recordings verify``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# the forms of a secret and what a key-like name is are the one redaction mechanism's
from relaystack.recording.identity import identifying_query
from relaystack.redaction import MIN_SECRET_LEN, REDACTED, is_key_like_name, variants
from relaystack.upstream.base import UpstreamRequest

__all__ = [
    "REDACTED",
    "SecretSet",
    "find_secrets",
    "is_key_like_name",
    "secrets_of_request",
    "variants",
]

_PROVIDER_DATA_HEADERS = frozenset({"x-llamastack-provider-data", "x-ogx-provider-data"})
# shapes that are keys wherever they appear
_KEY_SHAPES = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),  # OpenAI and many compatibles
    re.compile(r"\b(?:tgp_v1_|gsk_|xai-|sk-ant-|AIza)[A-Za-z0-9_\-]{16,}"),  # Together, Groq, xAI, ...
    # a token after "Bearer" (with a digit, so prose like "Bearer instruments" is left alone)
    re.compile(r"\bBearer\s+(?=[A-Za-z0-9._~+/\-]*\d)[A-Za-z0-9._~+/\-]{16,}=*"),
)
# a token-looking value (no whitespace): only judged inside key-like fields
_TOKEN_LIKE = re.compile(r"^\S{8,}$")


def secrets_of_request(request: UpstreamRequest) -> list[str]:
    """Every credential value the request carries (headers, provider data, URL, body)."""
    found: list[str] = []
    for name, value in request.headers.items():
        lname = name.lower()
        if lname in _PROVIDER_DATA_HEADERS:
            found.extend(_provider_data_values(value))
        elif is_key_like_name(lname) or lname.endswith(("-key", "-token")):
            found.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.append(token.strip())
    found.extend(_url_secrets(request))
    found.extend(request.secrets)  # what the provider declared (exchanged keys, signing secrets)
    if isinstance(request.json, dict):
        found.extend(_key_field_values(request.json))
    return [s for s in dict.fromkeys(found) if len(s) >= MIN_SECRET_LEN]


def _provider_data_values(raw: str) -> list[str]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return [raw]
    # every string in provider data is treated as a secret: its keys are open-ended
    return [raw, *_string_leaves(parsed)]


def _url_secrets(request: UpstreamRequest) -> list[str]:
    """The URL's password and every query value but those that identify the call (a page's
    ``after_id``: kept in the recording's URL, so never scrubbed; see ``identifying_query``)."""
    parts = urlsplit(request.url)
    found = [parts.password] if parts.password else []
    identifying = set(parse_qsl(identifying_query(request)))
    found.extend(value for name, value in parse_qsl(parts.query) if (name, value) not in identifying)
    return found


def _key_field_values(obj: Any) -> list[str]:
    found: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if is_key_like_name(str(key)) and isinstance(value, str):
                found.append(value)
            elif is_key_like_name(str(key)) and isinstance(value, list):
                found.extend(v for v in value if isinstance(v, str))
            else:
                found.extend(_key_field_values(value))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(_key_field_values(item))
    return found


def _string_leaves(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, Mapping):
        return [s for v in obj.values() for s in _string_leaves(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _string_leaves(v)]
    return []


class SecretSet:
    """The secrets of one request, ready to scrub JSON values or scan text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            forms |= variants(secret)
        # longest first, so a secret's base64 core is not half-replaced by a shorter form
        self._forms = sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def scrub_text(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        for shape in _KEY_SHAPES:
            text = shape.sub(REDACTED, text)
        return text

    def scrub(self, obj: Any) -> Any:
        """A copy of a JSON value with every secret replaced by ``[REDACTED]``.

        A string directly under a key-like name (``"api_key": "..."``) is replaced whole; an
        object under one (a JSON-schema property called ``password``) is walked as usual.
        """
        if isinstance(obj, str):
            return self.scrub_text(obj)
        if isinstance(obj, dict):
            return {k: self._scrub_field(str(k), v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.scrub(v) for v in obj]
        return obj

    def _scrub_field(self, key: str, value: Any) -> Any:
        if is_key_like_name(key):
            if isinstance(value, str) and value:
                return REDACTED
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return [REDACTED if v else v for v in value]
        return self.scrub(value)

    def scan_text(self, text: str) -> list[str]:
        """Descriptions (never the values) of secrets found in a file's text."""
        hits = [f"a form of a request credential ({len(f)} chars)" for f in self._forms if f in text]
        return hits + _shape_hits(text)


def _shape_hits(text: str) -> list[str]:
    hits: list[str] = []
    for shape in _KEY_SHAPES:
        for match in shape.finditer(text):
            hits.append(f"a key-shaped value '{match.group(0)[:6]}...' at offset {match.start()}")
    return hits


def find_secrets(text: str, secrets: Iterable[str] = ()) -> list[str]:
    """Everything in a recording's text that looks like a credential (used by the persister and verify)."""
    hits = SecretSet(secrets).scan_text(text)
    try:
        doc = json.loads(text)
    except ValueError:
        return hits
    if isinstance(doc, dict) and isinstance(doc.get("request"), dict):
        headers = doc["request"].get("headers")
        if headers:
            hits.append("request.headers is not empty (headers are never recorded)")
    hits.extend(_key_field_hits(doc, "$"))
    return hits


def _key_field_hits(obj: Any, where: str) -> list[str]:
    hits: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{where}.{key}"
            if is_key_like_name(str(key)):
                values = value if isinstance(value, list) else [value]
                if any(isinstance(v, str) and v != REDACTED and _TOKEN_LIKE.match(v) for v in values):
                    hits.append(f"key-like field {path} holds a token-like value")
            hits.extend(_key_field_hits(value, path))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            hits.extend(_key_field_hits(item, f"{where}[{i}]"))
    return hits
