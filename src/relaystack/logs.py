"""Logging: one set-up for the CLI and every worker process, text or JSON, and the access log.

The access log is one line per request on the ``relaystack.access`` logger (INFO): method,
path, status, model, provider, latency, stream or not, tokens when known. It never holds a
header, a query string or a body, so no key can reach it. With ``--log-format json`` every
line (access lines included) is one JSON object.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
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
    "TextFormatter",
    "configure_logging",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
_PID = os.getpid()

# the standard attributes of a LogRecord; anything else on a record came in through `extra=`
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _Stamps:
    """The timestamp of a record, formatted once per second (strftime per line costs ~5 µs)."""

    __slots__ = ("_second", "_text", "_utc")

    def __init__(self, utc: bool) -> None:
        self._second = -1
        self._text = ""
        self._utc = utc

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            if self._utc:
                self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            else:
                self._text = time.strftime("%H:%M:%S", time.localtime(second))
        return self._text


class TextFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL   logger: message``, built directly (logging.Formatter's own path costs
    ~18 µs a line, which the access log would pay on every request)."""

    def __init__(self) -> None:
        super().__init__()
        self.stamp = _Stamps(utc=False)

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.stamp(record.created)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, pid, and the record's extra fields."""

    def __init__(self) -> None:
        super().__init__()
        self._stamp = _Stamps(utc=True)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": f"{self._stamp(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        access = getattr(record, "access", None)
        if access is not None:
            line.update(access)
        else:
            for key in record.__dict__.keys() - _RECORD_ATTRS:
                if not key.startswith("_"):
                    line[key] = record.__dict__[key]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()

    def access_line(self, created: float, logger: str, fields: dict[str, Any]) -> str:
        line = {
            "ts": f"{self._stamp(created)}.{int(created * 1000) % 1000:03d}Z", "level": "info", "logger": logger,
            "message": f"{fields['method']} {fields['path']} {fields['status']}", "pid": _PID, **fields,
        }
        return orjson.dumps(line, default=str).decode()


# the handler configure_logging installed: access lines are written to it directly
_direct: logging.StreamHandler[Any] | None = None


def configure_logging(level: str, fmt: str = "text") -> None:
    """Root handler on stderr for relaystack, uvicorn and libraries alike (idempotent)."""
    global _direct
    handler: logging.StreamHandler[Any] = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    _direct = handler
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
        # a model that resolved is the server's own id; one that did not is the client's free text,
        # where a pasted key must not reach the log
        fields["model"] = ctx.model if ctx.provider_id is not None else _unresolved(ctx.model)
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
                fields.setdefault(key, value)
        self._write(fields)
        if len(ctx.attempt_log) > 1:
            self._attempt_lines(method, path, ctx)

    def _attempt_lines(self, method: str, path: str, ctx: RequestContext) -> None:
        """A request that took several attempts (retries, fallbacks) also leaves one line per
        attempt: which deployment, what it answered, how long it took, what the router did next."""
        total = len(ctx.attempt_log)
        for number, attempt in enumerate(ctx.attempt_log, 1):
            fields: dict[str, Any] = {
                "method": method, "path": path, "status": attempt.status or (200 if attempt.outcome == "ok" else 0),
                "latency_ms": round(attempt.duration_s * 1000.0, 2), "model": ctx.model,
                "provider": attempt.provider_id, "stream": ctx.stream, "deployment": attempt.deployment,
                "attempt": f"{number}/{total}", "outcome": attempt.outcome,
            }  # fmt: skip
            if attempt.error_code:
                fields["error"] = attempt.error_code
            if attempt.then:
                fields["then"] = attempt.then
            self._write(fields)

    def plain(self, method: str, path: str, status: int, started: float) -> None:
        """The line of any other request (models, providers, health, stored completions...)."""
        if not self.enabled or not self.logger.isEnabledFor(logging.INFO):
            return
        self._write(_fields(method, path, status, started))

    def _write(self, fields: dict[str, Any]) -> None:
        handler = _direct
        logger = self.logger
        if handler is not None and not logger.handlers and handler in logging.getLogger().handlers:
            # the hot path: the line formatted here and written to relaystack's own handler, under
            # its lock; a LogRecord through logging's machinery costs ~10 µs more per request
            formatter = handler.formatter
            now = time.time()
            if isinstance(formatter, JsonFormatter):
                line = formatter.access_line(now, logger.name, fields)
            elif isinstance(formatter, TextFormatter):
                line = f"{formatter.stamp(now)} INFO    {logger.name}: {_Line(fields)}"
            else:
                line = ""
            if line:
                with handler.lock or contextlib.nullcontext():
                    handler.stream.write(line + "\n")
                    handler.stream.flush()
                return
        record = logger.makeRecord(logger.name, logging.INFO, "", 0, "%s", (_Line(fields),), None)
        record.access = fields
        logger.handle(record)


# API keys are long unbroken alphanumeric runs (or relaystack's own rsk- keys); model names are
# short words between dashes, slashes and dots
_KEY_LIKE = re.compile(r"rsk-[0-9a-f]{12}-[A-Za-z0-9_\-]+|[A-Za-z0-9]{24,}")


def _unresolved(model: str | None) -> str | None:
    """The model id as the client sent it, with anything shaped like a key replaced by ``***``."""
    return _KEY_LIKE.sub("***", model) if model else model


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
        text = f"{f['method']} {f['path']} {f['status']} {f['latency_ms']}ms"
        shown = 4
        if "model" in f:
            text += f" model={f['model'] or '-'} provider={f['provider'] or '-'} {'stream' if f['stream'] else 'json'}"
            shown += 3
            if "prompt_tokens" in f or "completion_tokens" in f:
                text += f" tokens={f.get('prompt_tokens', '-')}+{f.get('completion_tokens', '-')}"
                shown += ("prompt_tokens" in f) + ("completion_tokens" in f) + ("total_tokens" in f)
        if len(f) > shown:
            text += "".join(f" {key}={value}" for key, value in f.items() if key not in _SHOWN)
        return text


_SHOWN = frozenset({"method", "path", "status", "latency_ms", "model", "provider", "stream",
                    "prompt_tokens", "completion_tokens", "total_tokens"})
