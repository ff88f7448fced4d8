"""Faults injected into replayed responses, so failure paths are testable offline.

A fault spec is a ``;``-separated list of ``key=value`` items (the value of the
``X-Relaystack-Fault`` request header, or ``ReplayingUpstream.inject(...)`` in a test):

    cut-after=N          stream: the connection drops after N chunks (no [DONE]);
                         iter_chunks() raises UpstreamConnectionError, like a real reset
    stall=SECONDS        sleep before the first chunk (or before chunk K with stall-after=K)
    stall-after=K        where the stall happens (default 0: before the first chunk)
    malformed-after=N    after N chunks, send one malformed event: ``data: {not json``
    status=CODE          answer CODE (400-599) with an OpenAI-shaped error body instead
    retry-after=SECONDS  with status: a Retry-After header
    deployment=NAME      only attempts on that deployment of a routed model get the rest
                         (the router applies it: ``deployment=primary;status=503``)

Examples: ``cut-after=3``, ``stall=2.5``, ``malformed-after=2``, ``status=429;retry-after=2``.
A non-streaming body counts as one chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relaystack.errors import InvalidRequestError, error_body

__all__ = ["FAULT_GRAMMAR", "MALFORMED_EVENT", "FaultSpec", "fault_error_body", "stall"]

FAULT_GRAMMAR = (
    "key=value items separated by ';': cut-after=N, stall=SECONDS, stall-after=N, malformed-after=N, "
    "status=400..599, retry-after=SECONDS (with status), deployment=NAME. Example: 'status=429;retry-after=2'"
)
MALFORMED_EVENT = b"data: {not json\n\n"
MAX_STALL_S = 600.0


@dataclass(frozen=True, slots=True)
class FaultSpec:
    cut_after: int | None = None
    stall: float | None = None
    stall_after: int = 0
    malformed_after: int | None = None
    status: int | None = None
    retry_after: float | None = None
    deployment: str | None = None

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse a fault spec; any error raises ``InvalidRequestError`` naming the grammar."""
        values: dict[str, Any] = {}
        items = [item.strip() for item in text.split(";") if item.strip()]
        if not items:
            raise _invalid(text, "it is empty")
        for item in items:
            key, sep, raw = item.partition("=")
            key = key.strip().lower()
            if not sep:
                raise _invalid(text, f"'{item}' is not key=value")
            if key not in _PARSERS:
                raise _invalid(text, f"unknown key '{key}'")
            attr, parse = _PARSERS[key]
            if attr in values:
                raise _invalid(text, f"'{key}' is given twice")
            try:
                values[attr] = parse(raw.strip())
            except ValueError as exc:
                raise _invalid(text, f"{key}: {exc}") from None
        if "retry_after" in values and "status" not in values:
            raise _invalid(text, "retry-after needs a status")
        if "stall_after" in values and "stall" not in values:
            raise _invalid(text, "stall-after needs a stall")
        return cls(**values)

    def check_applies(self, *, stream: bool) -> None:
        """Raise ``InvalidRequestError`` (400) if this fault cannot happen to the request: a fault
        silently skipped would make a test pass that proves nothing. A JSON answer is one chunk,
        so on a non-streamed request only position 0 exists (``cut-after=0``: the connection
        drops before the answer)."""
        positions = (("cut-after", self.cut_after), ("malformed-after", self.malformed_after),
                     ("stall-after", self.stall_after if self.stall is not None else None))
        if self.status is not None:
            for key, value in positions[:2]:
                if value is not None:
                    raise _invalid(str(self), f"{key} cannot apply: with status= the upstream sends no chunks")
            return
        if stream:
            return
        for key, value in positions:
            if value:
                raise _invalid(str(self), f"{key}={value} cannot apply to a non-streamed request, whose answer is "
                                          "one chunk (use 0, or send \"stream\": true)")

    def __str__(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.retry_after is not None:
            parts.append(f"retry-after={self.retry_after:g}")
        if self.stall is not None:
            parts.append(f"stall={self.stall:g}")
            if self.stall_after:
                parts.append(f"stall-after={self.stall_after}")
        if self.malformed_after is not None:
            parts.append(f"malformed-after={self.malformed_after}")
        if self.cut_after is not None:
            parts.append(f"cut-after={self.cut_after}")
        return ";".join(parts)

    def error_headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.retry_after is not None:
            headers["retry-after"] = f"{self.retry_after:g}"
        return headers


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"'{raw}' is not a whole number") from None
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"'{raw}' is not a number of seconds") from None
    if not 0 <= value <= MAX_STALL_S:
        raise ValueError(f"must be between 0 and {MAX_STALL_S:g} seconds")
    return value


def _status(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"'{raw}' is not an HTTP status") from None
    if not 400 <= value <= 599:
        raise ValueError("must be an error status, 400-599")
    return value


_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "cut-after": ("cut_after", _count),
    "stall": ("stall", _seconds),
    "stall-after": ("stall_after", _count),
    "malformed-after": ("malformed_after", _count),
    "status": ("status", _status),
    "retry-after": ("retry_after", _seconds),
    "deployment": ("deployment", str),
}


def _invalid(text: str, reason: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid fault spec {text[:200]!r}: {reason}. Grammar: {FAULT_GRAMMAR}.",
        param="X-Relaystack-Fault",
        code="invalid_fault_spec",
    )


async def stall(seconds: float) -> None:
    """The one place a fault waits (tests replace it to count stalls instead of sleeping)."""
    await asyncio.sleep(seconds)


def fault_error_body(spec: FaultSpec) -> dict[str, Any]:
    """The OpenAI-shaped error an upstream would send for ``status=...``."""
    status = spec.status or 500
    return error_body(status, f"Injected fault: the upstream answered {status} (X-Relaystack-Fault: {spec}).")
