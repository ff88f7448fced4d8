"""Logging: one set-up for the CLI and every worker process, text or JSON, and the access log.

The access log is one line per request on the ``relaystack.access`` logger (INFO): method,
path, status, model, provider, latency, stream or not, tokens when known. It never holds a
header, a query string or a body, so no key can reach it. With ``--log-format json`` every
line (access lines included) is one JSON object.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from relaystack.context import RequestContext

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "AccessLog",
    "JsonFormatter",
    "LogFormat",
    "configure_logging",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# the standard attributes of a LogRecord; anything else on a record came in through `extra=`
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str, fmt: str = "text") -> None:
    """Root handler on stderr for relaystack, uvicorn and libraries alike (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = getattr(logging, level.upper(), logging.INFO)
    root.setLevel(numeric)
    # uvicorn's start-up chatter repeats what relaystack's own ready line says
    logging.getLogger("uvicorn.error").setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)


class AccessLog:
    """Writes the access line of a request. ``enabled`` is read once per request."""

    def __init__(self, enabled: bool = True, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("relaystack.access")
        self.enabled = enabled

    def inference(self, method: str, path: str, ctx: RequestContext) -> None:
        """The line of an inference request, from its context (model, provider, usage...)."""
        if not self.enabled or not self.logger.isEnabledFor(logging.INFO):
            return
        fields = _fields(method, path, ctx.status or 500, ctx.started)
        fields["model"] = ctx.model
        fields["provider"] = ctx.provider_id
        fields["stream"] = ctx.stream
        if ctx.attempts > 1:
            fields["attempts"] = ctx.attempts
        if ctx.error_code:
            fields["error"] = ctx.error_code
        usage = ctx.usage
        if isinstance(usage, Mapping):
            for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = usage.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    fields[name] = value
        if ctx.log_fields:
            for key, value in ctx.log_fields.items():
                if key not in _RECORD_ATTRS:
                    fields.setdefault(key, value)
        self.logger.info("%s", _Line(fields), extra=fields)

    def plain(self, method: str, path: str, status: int, started: float) -> None:
        """The line of any other request (models, providers, health, stored completions...)."""
        if not self.enabled or not self.logger.isEnabledFor(logging.INFO):
            return
        fields = _fields(method, path, status, started)
        self.logger.info("%s", _Line(fields), extra=fields)


def _fields(method: str, path: str, status: int, started: float) -> dict[str, Any]:
    return {
        "method": method,
        "path": path,
        "status": status,
        "latency_ms": round((time.monotonic() - started) * 1000.0, 2),
    }


class _Line:
    """The text form of an access line, built only if a text formatter asks for it."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        f = self.fields
        parts = [f"{f['method']} {f['path']} {f['status']} {f['latency_ms']:.1f}ms"]
        if "model" in f:
            parts.append(f"model={f['model'] or '-'} provider={f['provider'] or '-'}")
            parts.append("stream" if f["stream"] else "json")
        if "prompt_tokens" in f or "completion_tokens" in f:
            parts.append(f"tokens={f.get('prompt_tokens', '-')}+{f.get('completion_tokens', '-')}")
        for key in f:
            if key not in _SHOWN:
                parts.append(f"{key}={f[key]}")
        return " ".join(parts)


_SHOWN = frozenset({"method", "path", "status", "latency_ms", "model", "provider", "stream",
                    "prompt_tokens", "completion_tokens", "total_tokens"})
