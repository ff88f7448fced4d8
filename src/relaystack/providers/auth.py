"""How a call to an upstream authenticates: pluggable schemes behind one small interface.

The shared base resolves a call's key (per-request from ``X-LlamaStack-Provider-Data``, else
the configured one, else none) and hands the request to its provider's ``Auth`` just before
sending. Each scheme is one class; adding one never touches the hot path:

- ``HeaderAuth``: the key in a header: ``Authorization: Bearer <key>`` (most providers),
  ``api-key: <key>`` (Azure), ``x-api-key`` (Anthropic's native API). No key: no header
  (vLLM, llama.cpp, self-hosted NIM).
- ``TokenExchangeAuth``: the key is exchanged for a short-lived access token (IBM IAM for
  watsonx, Google OAuth for Gemini/Vertex), cached per key until shortly before it expires,
  one exchange in flight per key, dropped after a 401 so the next call exchanges again.
- request signing (``providers.signing``): AWS SigV4 for Bedrock, OCI's signature.

Every scheme declares the secrets it derived (access tokens) through ``secrets()`` so the
redaction layer scrubs them as it scrubs keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from relaystack.upstream.base import UpstreamRequest

__all__ = ["Auth", "HeaderAuth", "TokenCache", "TokenExchangeAuth", "bearer"]

log = logging.getLogger("relaystack.providers.auth")


class Auth(Protocol):
    async def apply(self, request: UpstreamRequest, key: str | None) -> None:
        """Add the credentials of one call (``key`` is the call's key, or None) to ``request``."""

    def secrets(self) -> tuple[str, ...]:
        """Credentials this scheme derived (access tokens, signing keys): never to be shown."""

    def invalidate(self, key: str | None) -> None:
        """The upstream refused the credentials of a call made with ``key`` (401)."""

    async def aclose(self) -> None: ...


class HeaderAuth:
    """The key itself in one header; nothing at all without a key."""

    __slots__ = ("header", "scheme")

    def __init__(self, header: str = "Authorization", scheme: str = "Bearer") -> None:
        self.header = header
        self.scheme = scheme

    async def apply(self, request: UpstreamRequest, key: str | None) -> None:
        if key:
            request.headers[self.header] = f"{self.scheme} {key}" if self.scheme else key

    def secrets(self) -> tuple[str, ...]:
        return ()

    def invalidate(self, key: str | None) -> None:
        pass

    async def aclose(self) -> None:
        pass


def bearer() -> HeaderAuth:
    return HeaderAuth("Authorization", "Bearer")


# fetch(credential) -> (access token, seconds it stays valid)
TokenFetcher = Callable[[str], Awaitable[tuple[str, float]]]


class TokenCache:
    """Access tokens by the credential they were exchanged for.

    A token is reused until ``margin_s`` before it expires; concurrent calls with the same
    credential wait for one exchange; at most ``max_entries`` credentials are remembered
    (per-request keys must not grow memory without bound)."""

    def __init__(self, fetch: TokenFetcher, *, margin_s: float = 60.0, max_entries: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._margin = margin_s
        self._max = max_entries
        self._clock = clock
        self._tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.exchanges = 0

    async def get(self, credential: str) -> str:
        cached = self._fresh(credential)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(credential, asyncio.Lock())
        async with lock:
            cached = self._fresh(credential)  # another call may have exchanged while we waited
            if cached is not None:
                return cached
            token, lifetime = await self._fetch(credential)
            self.exchanges += 1
            self._tokens[credential] = (token, self._clock() + max(lifetime, 0.0))
            self._tokens.move_to_end(credential)
            while len(self._tokens) > self._max:
                old, _ = self._tokens.popitem(last=False)
                self._locks.pop(old, None)
            return token

    def _fresh(self, credential: str) -> str | None:
        entry = self._tokens.get(credential)
        if entry is None:
            return None
        token, expires_at = entry
        if self._clock() >= expires_at - self._margin:
            return None
        return token

    def drop(self, credential: str) -> None:
        self._tokens.pop(credential, None)

    def tokens(self) -> tuple[str, ...]:
        return tuple(token for token, _ in self._tokens.values())


class TokenExchangeAuth:
    """``Authorization: Bearer <token>``, the token obtained for the call's key through ``cache``.

    ``fixed_credential`` serves schemes whose credential is not a per-call key (Google's
    Application Default Credentials): every call then shares one cached token."""

    def __init__(self, cache: TokenCache, *, fixed_credential: str | None = None,
                 extra_headers: dict[str, str] | None = None) -> None:
        self.cache = cache
        self._fixed = fixed_credential
        self._extra = extra_headers or {}

    async def apply(self, request: UpstreamRequest, key: str | None) -> None:
        credential = key or self._fixed
        if credential is None:
            return
        token = await self.cache.get(credential)
        request.headers["Authorization"] = f"Bearer {token}"
        request.headers.update(self._extra)

    def secrets(self) -> tuple[str, ...]:
        return self.cache.tokens()

    def invalidate(self, key: str | None) -> None:
        credential = key or self._fixed
        if credential is not None:
            log.info("The upstream refused an access token (401): the next call exchanges the key again.")
            self.cache.drop(credential)

    async def aclose(self) -> None:
        pass
