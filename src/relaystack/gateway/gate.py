"""The gate every inference request passes: before the upstream call, and once it ended.

``OpenGate`` (auth off, no limits, no accounting) is the default and costs nothing.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Protocol

from relaystack.context import RequestContext
from relaystack.storage.base import UsageRow

__all__ = ["Gate", "OpenGate"]

# the ASGI scope of the request (headers, client address)
Scope = MutableMapping[str, Any]


class Gate(Protocol):
    async def admit(self, scope: Scope, ctx: RequestContext) -> None:
        """Authenticate and check limits once the request's model is known (``ctx.model``).

        Raises ``AuthenticationError`` (401), ``PermissionDeniedError`` (403) or
        ``RateLimitError`` (429); sets ``ctx.principal``.
        """

    def begin_settle(self, ctx: RequestContext, rides: bool = False) -> UsageRow | None:
        """Optional, not awaited: the answer is known (``ctx.status``, ``ctx.usage`` set) and the
        caller is about to store it. ``rides``: the caller's store commits a usage row in the
        completion's own transaction (``Store.commits_usage_with_completions``), so the request's
        usage row is returned (None: nothing to account) for it to pass to ``put_completion`` /
        ``put_stream``, and ``settle`` is told whether that write committed (one write, one
        commit per request). Else the usage write is queued now, next to the caller's store
        write. ``settle`` must still be awaited.
        """

    async def settle(self, ctx: RequestContext, usage_stored: bool | None = None) -> None:
        """The request ended (``ctx.status``, ``ctx.usage`` set): account for it.

        Awaited before the client gets the last byte, so usage is never lost when the
        answer was delivered. Must run once for every admitted request, on every path (errors
        and cancellations too: it gives back the request's concurrency slot); calling it again
        is harmless. ``usage_stored``: whether the completion carrying the row ``begin_settle``
        returned committed (False: the usage is written on its own now; None: not known, e.g.
        cancelled while it was queued: it is counted as written).
        """


class OpenGate:
    async def admit(self, scope: Scope, ctx: RequestContext) -> None:
        return None

    def begin_settle(self, ctx: RequestContext, rides: bool = False) -> UsageRow | None:
        return None

    async def settle(self, ctx: RequestContext, usage_stored: bool | None = None) -> None:
        return None
