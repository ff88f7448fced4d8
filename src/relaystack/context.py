"""One client request as the layers below the API see it.

The API layer makes a ``RequestContext`` for every inference request (chat, completions,
embeddings, and the front-ends that translate into them). The gateway layer reads who is
calling (``principal``) and records usage on it; the router records which provider served
and how many attempts it took; the access log and the metrics read it when the request ends.
Plain data, importable from any layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from relaystack.redaction import PROCESS, Redactor

__all__ = ["Attempt", "Operation", "RequestContext"]

# what the upstream is asked for; the front-ends (responses, messages) map onto "chat"
Operation = Literal["chat", "completion", "embeddings", "rerank"]


@dataclass(slots=True)
class Attempt:
    """One call to one deployment (the router appends one per try; the access log reads them)."""

    deployment: str  # the deployment's name (its provider id unless named in run.yaml)
    provider_id: str
    started: float  # time.monotonic()
    duration_s: float = 0.0
    # "ok" (an answer, or a stream's first event, came), "error" (retryable failure),
    # "refused" (an error no other attempt can fix), "cancelled"
    outcome: str = "ok"
    status: int | None = None  # the HTTP status the attempt ended with (504 timeout, 502 connect)
    error_code: str | None = None  # e.g. upstream_timeout, upstream_unreachable, rate_limit_exceeded
    # what the router did next: "retry" (same deployment), "fallback" (the next one) or None
    then: str | None = None


@dataclass(slots=True)
class RequestContext:
    operation: Operation
    # X-LlamaStack-Provider-Data, parsed: per-request keys (never logged, stored or recorded)
    provider_data: dict[str, Any] | None = None
    # X-Relaystack-Fault (replay mode only)
    fault: str | None = None
    # the API the client spoke: "openai", or a front-end's name ("responses", "messages")
    api: str = "openai"
    started: float = field(default_factory=time.monotonic)
    # the gateway's authenticated caller; None when auth is off
    principal: Any = None
    # set by the gateway when it accounts tokens: streams then ask their upstream for usage
    # even when the client did not (the client's stream stays as it asked; ``usage`` is filled)
    usage_wanted: bool = False
    # every secret the request carries (provider data keys, the provider's declared secrets):
    # whatever is written for this request passes through it (responses, stored rows, logs)
    redactor: Redactor = field(default_factory=lambda: Redactor(parent=PROCESS))
    # -- filled in as the request goes -----------------------------------------------------
    model: str | None = None  # the caller's model id
    provider_id: str | None = None  # the provider that served (the last one tried)
    deployment: str | None = None  # the deployment that served (the last one tried)
    attempts: int = 0
    # every attempt of a routed model, in order (empty for a model relayed without routing)
    attempt_log: list[Attempt] = field(default_factory=list)
    # X-Relaystack-Max-Attempts: the client caps this request's attempts (1: no retry, no fallback)
    max_attempts: int | None = None
    stream: bool = False
    # what a budgeted key's request is estimated to cost from before it runs (see gateway/holds.py):
    # the request body's size and the output tokens it asked for at most
    request_bytes: int = 0
    max_output_tokens: int | None = None
    # the answer's usage; for a stream, its last usage-carrying chunk's (read once it ended)
    usage: dict[str, Any] | None = None
    status: int | None = None
    # the error's code when the request failed (e.g. "upstream_unreachable"): health and the access log
    error_code: str | None = None
    # extra fields a layer wants on the request's access line (e.g. the router's attempts)
    log_fields: dict[str, Any] | None = None

    def note_size(self, request_bytes: int, body: dict[str, Any]) -> None:
        """The request's size and its output cap: chat's ``max_completion_tokens`` or ``max_tokens``
        (Messages' too), or Responses' ``max_output_tokens``."""
        self.request_bytes = request_bytes
        cap = body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
        self.max_output_tokens = cap if cap.__class__ is int and cap > 0 else None

    def routing_headers(self) -> list[tuple[bytes, bytes]]:
        """Which provider (and deployment) answered, after how many attempts."""
        headers = [(b"x-relaystack-attempts", str(self.attempts).encode())]
        if self.provider_id is not None:
            headers.append((b"x-relaystack-provider", self.provider_id.encode()))
        if self.deployment is not None:
            headers.append((b"x-relaystack-deployment", self.deployment.encode()))
        return headers

    def with_limit_headers(self, extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """An answer's headers plus the caller's x-ratelimit-* (when its key has limits)."""
        limits = getattr(self.principal, "headers", None)
        return [*extra, *limits] if limits else extra

    def limit_lines(self) -> bytes | None:
        """The caller's x-ratelimit-* as the lines of a response head (``api.asgi.HEAD_WRITER``);
        None (or empty) when its key has no limits."""
        lines = getattr(self.principal, "header_lines", None)
        return lines() if lines is not None else None

    def answer_headers(self, extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """A successful answer's headers: ``extra``, the routing headers and the rate-limit ones."""
        return self.with_limit_headers([*extra, *self.routing_headers()])
