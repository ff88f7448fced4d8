"""The one seam through which every remote provider talks HTTP.

Providers build an ``UpstreamRequest`` and hand it to an ``Upstream``; nothing else in
relaystack opens a socket to a provider. Record/replay (``relaystack.recording``) wraps
an ``Upstream`` with another ``Upstream``, so it sees every call (chat, completions,
embeddings, model listing, streams chunk by chunk) without patching any SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["ResponseHeaders", "Timeouts", "Upstream", "UpstreamRequest", "UpstreamResponse"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    # longest silence allowed between two reads of the response (time to first byte included)
    read: float = 600.0


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    # the exact bytes sent on the wire (None for GET)
    body: bytes | None = None
    # the same body, already parsed: lets the recorder match without parsing again
    json: Any = None
    stream: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)
    # a fault to inject on replay (``X-Relaystack-Fault``); live upstreams ignore it
    fault: str | None = None
    # TLS: True (system CAs), False (no verification: self-hosted servers with self-signed
    # certificates), or the path of a CA bundle
    verify: bool | str = True
    # every credential this call carries that is not visible in its headers (an API key
    # exchanged for a token, a signing key), declared by the provider so the recorder can
    # scrub them too; never sent
    secrets: tuple[str, ...] = ()


class ResponseHeaders(dict[str, str]):
    """Response headers, stored under lower-case names and looked up case-insensitively
    (callers ask for ``Retry-After`` or ``content-type``)."""

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> ResponseHeaders:
        return cls({name.lower(): value for name, value in headers.items()})

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes:
        """The whole body."""

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, in whatever pieces the transport delivers."""

    async def aclose(self) -> None:
        """Release the connection (cancelling the upstream request if the body is unread)."""


class Upstream(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send the request; return once the status line and headers arrived.

        Raises ``UpstreamConnectionError`` / ``UpstreamTimeoutError`` for transport failures;
        an HTTP error status is returned, not raised.
        """

    async def aclose(self) -> None: ...
