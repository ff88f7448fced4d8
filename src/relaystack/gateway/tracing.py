"""OpenTelemetry traces, only when ``server.tracing`` is configured (``pip install relaystack[otel]``).

One server span per request (``POST /v1/chat/completions``), a child of the client's
``traceparent`` when it sends one, exported over OTLP/HTTP by a background batch processor.
The inference details (model, provider, status, tokens, first-token time, the router's retries
and fallbacks) arrive through the ``relaystack.telemetry`` hooks, which this wraps. When tracing
is off none of this is imported and the request path has one ``is None`` check.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from relaystack.context import RequestContext
from relaystack.errors import ConfigError
from relaystack.gateway.settings import TracingSettings
from relaystack.gateway.usage import tokens_of
from relaystack.telemetry import Telemetry

__all__ = ["Tracing"]

Scope = MutableMapping[str, Any]


class Tracing(Telemetry):
    """Wraps the metrics telemetry (or the no-op one) and records the same events on the current span."""

    enabled = True

    def __init__(self, settings: TracingSettings, inner: Telemetry) -> None:
        try:
            from opentelemetry import propagate, trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise ConfigError(
                f"server.tracing needs OpenTelemetry: pip install 'relaystack[otel]' ({exc.name} is missing)."
            ) from None
        self._inner = inner
        self._trace = trace
        self._propagate = propagate
        self._server_kind = trace.SpanKind.SERVER
        self._provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint) if settings.otlp_endpoint else OTLPSpanExporter()
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self._provider.get_tracer("relaystack")

    def span(self, scope: Scope) -> Any:
        """A context manager: the request's server span, current while the request runs."""
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"traceparent", b"tracestate")}
        context = self._propagate.extract(carrier) if carrier else None
        return self.tracer.start_as_current_span(
            f"{scope['method']} {scope['path']}", context=context, kind=self._server_kind,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        )

    def shutdown(self) -> None:
        self._provider.shutdown()  # flushes what is queued

    def _current(self) -> Any:
        return self._trace.get_current_span()

    # -- the hooks: the inner telemetry's, plus the span's attributes and events ----------------
    def request_done(self, route: str, ctx: RequestContext) -> None:
        self._inner.request_done(route, ctx)
        attributes: dict[str, Any] = {"relaystack.operation": ctx.operation, "relaystack.attempts": ctx.attempts}
        if ctx.provider_id is not None and ctx.model:
            attributes.update({"gen_ai.request.model": ctx.model, "relaystack.provider": ctx.provider_id})
        if ctx.status is not None:
            attributes["http.response.status_code"] = ctx.status
        if ctx.usage:
            tokens = tokens_of(ctx.usage)
            attributes.update({"gen_ai.usage.input_tokens": tokens.prompt,
                               "gen_ai.usage.output_tokens": tokens.completion})
        key_id = getattr(ctx.principal, "key_id", None)
        if key_id is not None:
            attributes["relaystack.key_id"] = key_id  # the public id, never the key
        self._current().set_attributes(attributes)

    def route_done(self, route: str, status: int, seconds: float) -> None:
        self._inner.route_done(route, status, seconds)
        self._current().set_attribute("http.response.status_code", status)

    def first_token(self, ctx: RequestContext, seconds: float) -> None:
        self._inner.first_token(ctx, seconds)
        self._current().add_event("first_token", {"seconds": seconds}, timestamp=time.time_ns())

    def upstream_error(self, provider: str, status: int) -> None:
        self._inner.upstream_error(provider, status)
        self._current().add_event("upstream_error", {"provider": provider, "status": status})

    def stream_failure(self, provider: str, reason: str) -> None:
        self._inner.stream_failure(provider, reason)
        self._current().add_event("stream_failure", {"provider": provider, "reason": reason})

    def store_failure(self, operation: str) -> None:
        self._inner.store_failure(operation)
        self._current().add_event("store_failure", {"operation": operation})

    def rate_limited(self, reason: str) -> None:
        self._inner.rate_limited(reason)
        self._current().add_event("rate_limited", {"reason": reason})

    def auth_failure(self, reason: str) -> None:
        self._inner.auth_failure(reason)
        self._current().add_event("auth_failure", {"reason": reason})

    def retry(self, provider: str, model: str, reason: str) -> None:
        self._inner.retry(provider, model, reason)
        self._current().add_event("retry", {"provider": provider, "model": model, "reason": reason})

    def fallback(self, model: str, from_provider: str, to_provider: str) -> None:
        self._inner.fallback(model, from_provider, to_provider)
        self._current().add_event("fallback", {"model": model, "from": from_provider, "to": to_provider})

    def cooldown(self, provider: str, model: str, seconds: float) -> None:
        self._inner.cooldown(provider, model, seconds)
        self._current().add_event("cooldown", {"provider": provider, "model": model, "seconds": seconds})
