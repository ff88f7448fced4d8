"""The gate every inference request passes: before the upstream call, and once it ended.

``OpenGate`` (auth off, no limits, no accounting) is the default and costs nothing.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Protocol

from relaystack.context import RequestContext

__all__ = ["Gate", "OpenGate"]

# the ASGI scope of the request (headers, client address)
Scope = MutableMapping[str, Any]


class Gate(Protocol):
    async def admit(self, scope: Scope, ctx: RequestContext) -> None:
        """Authenticate and check limits once the request's model is known (``ctx.model``).

        Raises ``AuthenticationError`` (401), ``PermissionDeniedError`` (403) or
        ``RateLimitError`` (429); sets ``ctx.principal``.
        """

    def begin_settle(self, ctx: RequestContext) -> None:
        """Optional, not awaited: the answer is known (``ctx.status``, ``ctx.usage`` set) and the
        caller is about to store it. Queues the request's usage write now, so it commits in the
        same transaction as the caller's own store write and ``settle`` then finds it done (one
        store round trip per request instead of two). ``settle`` must still be awaited.
        """

    async def settle(self, ctx: RequestContext) -> None:
        """The request ended (``ctx.status``, ``ctx.usage`` set): account for it.

        Awaited before the client gets the last byte, so usage is never lost when the
        answer was delivered. Must run once for every admitted request, on every path (errors
        and cancellations too: it gives back the request's concurrency slot); calling it again
        is harmless.
        """


class OpenGate:
    async def admit(self, scope: Scope, ctx: RequestContext) -> None:
        return None

    def begin_settle(self, ctx: RequestContext) -> None:
        return None

    async def settle(self, ctx: RequestContext) -> None:
        return None
