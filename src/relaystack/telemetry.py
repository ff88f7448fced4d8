"""The tiny metrics API every layer may call: ``telemetry.current().retry(...)``.

Plain like ``context.py`` (no imports of other layers), so the router, the providers' stream
relay and the store can count what happens to them without importing the gateway. The base
class does nothing and costs one method call; ``relaystack.gateway.metrics`` installs the
Prometheus implementation at start-up when ``server.metrics`` is on (the default).

Label values must come from the server's own vocabulary (provider ids, model ids that
resolved, fixed reasons): never a request's free text, never a key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relaystack.context import RequestContext

__all__ = ["Telemetry", "current", "install"]


class Telemetry:
    """Every hook a layer may call. Overridden by ``relaystack.gateway.metrics.PrometheusTelemetry``."""

    enabled = False

    # -- the API layer -------------------------------------------------------------------------
    def request_done(self, route: str, ctx: RequestContext) -> None:
        """An inference request ended (``ctx.status``, ``ctx.usage``, ``ctx.started`` set)."""

    def route_done(self, route: str, status: int, seconds: float) -> None:
        """A request to a route off the inference path ended (admin routes, refused requests)."""

    def first_token(self, ctx: RequestContext, seconds: float) -> None:
        """A stream's first block reached the client ``seconds`` after the request arrived."""

    def upstream_error(self, provider: str, status: int) -> None:
        """A provider answered an error, or could not be reached (502/504)."""

    def stream_failure(self, provider: str, reason: str) -> None:
        """A stream ended with an error event instead of finishing (``reason``: a short code)."""

    def store_failure(self, operation: str) -> None:
        """A store write or read failed (``operation``: e.g. ``completion``, ``stream``, ``usage``)."""

    def rate_limited(self, reason: str) -> None:
        """The gateway refused a request: ``rpm``, ``tpm``, ``rpd``, ``concurrency``, ``budget``."""

    def auth_failure(self, reason: str) -> None:
        """A request had no key, a wrong, revoked or expired one, or was forbidden a model."""

    # -- the router: retries, fallbacks, cooldowns ------------------------------------------------
    def retry(self, provider: str, model: str, reason: str) -> None:
        """The router tried ``provider`` again for ``model`` after ``reason`` (e.g. ``429``, ``timeout``)."""

    def fallback(self, model: str, from_provider: str, to_provider: str) -> None:
        """The router moved ``model``'s request from one deployment's provider to another's."""

    def cooldown(self, provider: str, model: str, seconds: float) -> None:
        """The router took a deployment out of rotation for ``seconds``."""


_current = Telemetry()


def current() -> Telemetry:
    return _current


def install(telemetry: Telemetry) -> None:
    """Make ``telemetry`` what ``current()`` returns (the composition root, at start-up)."""
    global _current
    _current = telemetry
