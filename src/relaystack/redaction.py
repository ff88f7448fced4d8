"""Keeping credentials out of everything relaystack writes: responses, logs, stored rows.

One mechanism, fed by whoever knows a secret:

- a provider declares the secrets of a call (``Provider.secrets(call)``: its configured
  key, the per-request key from ``X-LlamaStack-Provider-Data``, and whatever its auth scheme
  obtains or signs with); the router adds them to the request's ``Redactor``;
- the API layer adds the key-like values of ``X-LlamaStack-Provider-Data`` itself;
- ``PROCESS`` holds what the whole process knows: every provider's configured secrets and
  key-like environment variables (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``...).

A ``Redactor`` replaces every form an echoed secret can take (raw, JSON-escaped, URL-encoded,
base64 at any alignment) with ``[REDACTED]``. Streams are scanned with the few forms an
upstream can echo inside JSON (``wire_forms``): one ``bytes in`` per form and block.
``install_log_redaction`` makes every log record pass the current request's redactor.
Values shorter than 8 characters are never treated as secrets: scrubbing them would corrupt text.
"""

from __future__ import annotations

import base64
import contextvars
import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

__all__ = [
    "MIN_SECRET_LEN",
    "PROCESS",
    "REDACTED",
    "Redactor",
    "bind_request",
    "install_log_redaction",
    "is_key_like_name",
    "key_like_values",
    "register_environment",
    "variants",
]

REDACTED = "[REDACTED]"
_REDACTED_BYTES = REDACTED.encode()
_E = TypeVar("_E")
MIN_SECRET_LEN = 8

_KEY_NAME = re.compile(
    r"(?:^|[_\-.])(?:api[_\-]?key|apikey|api[_\-]?token|access[_\-]?token|refresh[_\-]?token|id[_\-]?token"
    r"|auth[_\-]?token|session[_\-]?token|security[_\-]?token|secret|client[_\-]?secret|password|passwd"
    r"|authorization|proxy[_\-]authorization|cookie|set[_\-]cookie|credentials?|private[_\-]?key|bearer"
    r"|secret[_\-]?access[_\-]?key)$",
    re.IGNORECASE,
)


def is_key_like_name(name: str) -> bool:
    """``api_key``, ``X-Api-Key``, ``together_api_key``, ``Authorization``; not ``max_tokens``."""
    return bool(_KEY_NAME.search(name.strip()))


def key_like_values(obj: Any) -> list[str]:
    """The strings under key-like names anywhere in a JSON value (e.g. provider data)."""
    found: list[str] = []
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if is_key_like_name(str(key)) and isinstance(value, str):
                found.append(value)
            else:
                found.extend(key_like_values(value))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(key_like_values(item))
    return found


@functools.lru_cache(maxsize=1024)
def variants(secret: str) -> frozenset[str]:
    """Forms an echoed secret can take: raw, JSON-escaped, URL-encoded, base64 (any alignment)."""
    escaped = json.dumps(secret)[1:-1]
    out = {secret, escaped, escaped.replace("/", "\\/"), quote(secret, safe=""), quote_plus(secret)}
    raw = secret.encode()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            encoded = encode(b"\0" * offset + raw).decode()
            # keep only the characters that depend on the secret's bytes alone
            start = -(-offset * 8 // 6)
            end = (offset + len(raw)) * 8 // 6
            out.add(encoded[start:end])
    return frozenset(v for v in out if len(v) >= MIN_SECRET_LEN)


@functools.lru_cache(maxsize=1024)  # a provider's key is the same on every request
def _wire_variants(secret: str) -> frozenset[bytes]:
    """The forms a secret takes inside JSON an upstream wrote (raw, escaped, ``\\/``-escaped)."""
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    ascii_escaped = json.dumps(secret)[1:-1]
    forms = {secret, escaped, escaped.replace("/", "\\/"), ascii_escaped}
    return frozenset(f.encode() for f in forms if len(f) >= MIN_SECRET_LEN)


# bytes least likely in an answer, rarest first: JSON's punctuation, numbers (floats: digits,
# "e", "E", "-", ".") and lower-case key names are full of the rest. A form is searched for only
# from where its rarest bytes all occur (``Redactor.wire``).
_RARITY = {c: rank for rank, c in enumerate(b"QZXJKVWYFGBPHMUCDLSNRIOAT" b"qzxjvwykfgbphmucdlsnriota")}
_ANCHORS = 3
_Scan = tuple[bytes, tuple[tuple[bytes, int], ...]]  # a wire form, and its anchors: (byte, first offset)


@functools.lru_cache(maxsize=1024)  # a request carries its provider's keys: the same set each time
def _wire_scan(secrets: frozenset[str]) -> tuple[tuple[bytes, ...], tuple[_Scan, ...]]:
    """The wire forms of ``secrets``, longest first, and each form with its anchors."""
    forms: set[bytes] = set()
    for secret in secrets:
        forms |= _wire_variants(secret)
    wire = tuple(sorted(forms, key=len, reverse=True))
    return wire, tuple((form, _anchors(form)) for form in wire)


def _anchors(form: bytes) -> tuple[tuple[bytes, int], ...]:
    """Up to three of the form's rarest bytes, each with its first offset in the form."""
    ranked = sorted({c for c in form if c in _RARITY}, key=_RARITY.__getitem__)[:_ANCHORS]
    return tuple((bytes([c]), form.index(c)) for c in ranked)


class Redactor:
    """The secrets one request (or the process) carries, and every way to scrub them.

    ``parent`` (usually ``PROCESS``) is consulted by the text and JSON paths, never by
    ``wire``: a stream can only echo what its own call sent.
    """

    __slots__ = ("_forms", "_parent", "_scan", "_secrets", "_wire")

    def __init__(self, secrets: Iterable[str | None] = (), parent: Redactor | None = None) -> None:
        self._secrets: set[str] = set()
        self._forms: list[str] | None = []
        self._wire: tuple[bytes, ...] = ()
        self._scan: tuple[_Scan, ...] = ()
        self._parent = parent
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LEN} - self._secrets
        if new:
            self._secrets |= new
            self._forms = None  # rebuilt on first use
            self._wire, self._scan = _wire_scan(frozenset(self._secrets))

    def __bool__(self) -> bool:
        return bool(self._secrets) or bool(self._parent)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    @property
    def wire_forms(self) -> tuple[bytes, ...]:
        return self._wire

    def _all_forms(self) -> list[str]:
        if self._forms is None:
            forms: set[str] = set()
            for secret in self._secrets:
                forms |= variants(secret)
            # longest first, so a secret's base64 core is not half-replaced by a shorter form
            self._forms = sorted(forms, key=len, reverse=True)
        return self._forms

    def text(self, text: str) -> str:
        for form in self._all_forms():
            if form in text:
                text = text.replace(form, REDACTED)
        return self._parent.text(text) if self._parent is not None else text

    def value(self, obj: Any) -> Any:
        """A copy of a JSON value with every secret replaced (keys of objects included)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.text(str(k)): self.value(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        return obj

    def wire(self, data: bytes) -> bytes:
        """Bytes with the call's secrets replaced (the cheap scan for streamed blocks and answers).

        Returns ``data`` itself when it holds none. A form is searched for only from where each of
        its rarest bytes has occurred once (a ``memchr`` each): a secret's form cannot start
        before that. An embedding's 20 KB of floats, which holds no letter but ``e``, is passed
        in a few µs instead of a ~20 µs search that advances about a byte per step on digits."""
        for form, anchors in self._scan:
            start = 0
            for anchor, offset in anchors:
                found = data.find(anchor)
                if found < 0:
                    break
                start = max(start, found - offset)
            else:
                if data.find(form, start) >= 0:
                    data = data.replace(form, _REDACTED_BYTES)
        return data

    def error(self, exc: _E) -> _E:
        """Scrub an error's message, param, code, type and passed-on headers in place; returns it."""
        for name in ("message", "param", "code", "_type"):
            value = getattr(exc, name, None)
            if isinstance(value, str):
                setattr(exc, name, self.text(value))
        headers = getattr(exc, "headers", None)
        if isinstance(headers, dict):
            setattr(exc, "headers", {k: self.text(v) for k, v in headers.items()})  # noqa: B010
        if isinstance(exc, BaseException) and exc.args:
            exc.args = tuple(self.text(a) if isinstance(a, str) else a for a in exc.args)
        return exc


# what the whole process knows: configured keys, key-like environment variables
PROCESS = Redactor()

_current: contextvars.ContextVar[Redactor | None] = contextvars.ContextVar("relaystack_redactor", default=None)


def bind_request(redactor: Redactor) -> None:
    """Make ``redactor`` the one log records of the running request (its task) pass through."""
    _current.set(redactor)


def register_environment(environ: Mapping[str, str] | None = None) -> None:
    """Add key-like environment variables (``TOGETHER_API_KEY``, ``*_TOKEN``...) to ``PROCESS``."""
    env = os.environ if environ is None else environ
    PROCESS.add(value for name, value in env.items() if is_key_like_name(name) or name.upper().endswith(_ENV_SUFFIXES))


_ENV_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_installed = False


def install_log_redaction() -> None:
    """Every log record from now on has its message, arguments and traceback scrubbed.

    Done in the record factory, so it holds for every logger and handler (uvicorn's too),
    and costs nothing for records a level filter drops (they are never created).
    """
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redactor = _current.get() or PROCESS
        if redactor:
            _scrub_record(record, redactor)
        return record

    logging.setLogRecordFactory(factory)


def _scrub_record(record: logging.LogRecord, redactor: Redactor) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: leave it to the handler to report
        return
    scrubbed = redactor.text(message)
    if scrubbed != message:
        record.msg, record.args = scrubbed, None
    if record.exc_info and record.exc_info[1] is not None:
        # formatters render the exception themselves (relaystack's do not read exc_text): scrub
        # the exceptions of the chain, so whatever renders them renders no secret
        seen: set[int] = set()
        exc: BaseException | None = record.exc_info[1]
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            redactor.error(exc)
            exc = exc.__cause__ or exc.__context__
        record.exc_text = redactor.text(logging.Formatter().formatException(record.exc_info))
