"""What ``GET /v1/health`` knows about each provider, without calling any upstream per probe.

Each provider has one ``ProviderHealth``: the outcome of its last model discovery and of the
last request it served, and from them its ``outcome`` (the most recent of the two wins):

- ``ok``: the last discovery or request worked (or failed for the client's own reasons);
- ``degraded``: the upstream answered, but with a 5xx, a 429, a refused key or a broken answer;
- ``unreachable``: the upstream could not be reached or timed out;
- ``unknown``: nothing was tried yet (e.g. no key, so no discovery).

The object per provider is the place for more (the router's cooldowns, per deployment).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from relaystack.context import RequestContext
from relaystack.errors import RelaystackError

__all__ = ["HealthBook", "ProviderHealth", "ProviderState"]

ProviderState = Literal["ok", "degraded", "unreachable", "unknown"]

# error codes that mean "the upstream was not reached at all"
_UNREACHABLE_CODES = frozenset({"upstream_unreachable", "upstream_timeout"})


@dataclass(slots=True)
class _Event:
    state: ProviderState
    at: float  # wall clock, for people reading the health page
    seq: int  # which event is the most recent
    status: int | None = None
    error: str | None = None
    models: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "at": round(self.at, 3)}
        if self.status is not None:
            out["status"] = self.status
        if self.models is not None:
            out["models"] = self.models
        if self.error is not None:
            out["error"] = self.error
        return out


class ProviderHealth:
    __slots__ = ("_book", "discovery", "last_request")

    def __init__(self, book: HealthBook) -> None:
        self._book = book
        self.discovery: _Event | None = None
        self.last_request: _Event | None = None

    def discovered(self, models: int) -> None:
        self.discovery = _Event("ok", time.time(), self._book.tick(), models=models)

    def discovery_failed(self, exc: BaseException) -> None:
        if isinstance(exc, RelaystackError):
            state = _state_of_error(exc.status_code, exc.code)
            self.discovery = _Event(state, time.time(), self._book.tick(), exc.status_code, exc.message[:300])
        else:
            self.discovery = _Event("degraded", time.time(), self._book.tick(), None, type(exc).__name__)

    def adopt_discovery(self, event: dict[str, Any]) -> None:
        """Take another worker process's discovery outcome (``discovery.to_dict()``) as this one's."""
        self.discovery = _Event(event["state"], float(event["at"]), self._book.tick(), event.get("status"),
                                event.get("error"), event.get("models"))

    def request_ended(self, status: int, error_code: str | None) -> None:
        state = "ok" if status < 400 else _state_of_error(status, error_code)
        self.last_request = _Event(state, time.time(), self._book.tick(), status, error_code)

    @property
    def state(self) -> ProviderState:
        events = [e for e in (self.discovery, self.last_request) if e is not None]
        if not events:
            return "unknown"
        return max(events, key=lambda e: e.seq).state

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.state,
            "last_discovery": self.discovery.to_dict() if self.discovery else None,
            "last_request": self.last_request.to_dict() if self.last_request else None,
        }


def _state_of_error(status: int, code: str | None) -> ProviderState:
    if code in _UNREACHABLE_CODES:
        return "unreachable"
    if status >= 500 or status in (401, 403, 429):
        return "degraded"
    return "ok"  # a 4xx about the request itself says nothing bad about the provider


class HealthBook:
    """One ``ProviderHealth`` per provider id, created on first use."""

    def __init__(self) -> None:
        self._providers: dict[str, ProviderHealth] = {}
        self._seq = 0

    def tick(self) -> int:
        self._seq += 1
        return self._seq

    def __getitem__(self, provider_id: str) -> ProviderHealth:
        health = self._providers.get(provider_id)
        if health is None:
            health = self._providers[provider_id] = ProviderHealth(self)
        return health

    def request_ended(self, ctx: RequestContext) -> None:
        """Record a finished inference request (the API layer calls it once per request)."""
        if ctx.provider_id is not None and ctx.status is not None:
            self[ctx.provider_id].request_ended(ctx.status, ctx.error_code)
