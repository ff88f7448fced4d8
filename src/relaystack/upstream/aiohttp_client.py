"""The live upstream: one pooled aiohttp session per provider.

aiohttp was chosen by measurement (see bench/README.md): on one core a byte relay on
aiohttp served ~10x the requests of the same relay on httpx.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from functools import cache

import aiohttp

from relaystack.errors import UpstreamConnectionError, UpstreamTimeoutError
from relaystack.upstream.base import UpstreamRequest

__all__ = ["AiohttpUpstream"]

class _Response:
    __slots__ = ("_resp", "_timeout", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, read_timeout: float) -> None:
        self._resp = resp
        self._timeout = read_timeout
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeoutError(_timeout_message(self._timeout)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(f"The upstream connection broke while reading: {_describe(exc)}") from exc
        finally:
            self._resp.release()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except TimeoutError as exc:
            raise UpstreamTimeoutError(_timeout_message(self._timeout)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(f"The upstream connection broke mid-stream: {_describe(exc)}") from exc

    async def aclose(self) -> None:
        # close() (not release()) drops the connection if the body was not fully read,
        # which is what cancels a generation upstream when our client goes away.
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


class AiohttpUpstream:
    """A pooled HTTP client. Created lazily inside the running event loop."""

    def __init__(self, *, limit: int = 256, limit_per_host: int = 0) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._limit = limit
        self._limit_per_host = limit_per_host

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=self._limit_per_host, keepalive_timeout=30, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                cookie_jar=aiohttp.DummyCookieJar(),  # an API relay keeps no cookies (and saves the work)
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "relaystack"},
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def send(self, request: UpstreamRequest) -> _Response:
        timeout = aiohttp.ClientTimeout(
            total=None, connect=request.timeouts.connect, sock_read=request.timeouts.read
        )
        try:
            resp = await self._get_session().request(
                request.method, request.url, data=request.body, headers=request.headers, timeout=timeout,
                ssl=_ssl_for(request.verify),
            )
        except TimeoutError as exc:
            raise UpstreamTimeoutError(_timeout_message(request.timeouts.connect, connecting=True)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"Could not reach the upstream at {_origin(request.url)}: {_describe(exc)}. "
                "Check the provider's base_url and that the service is up."
            ) from exc
        return _Response(resp, request.timeouts.read)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _ssl_for(verify: bool | str) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl=``: True verifies with the system CAs, False does not verify, a path is a CA bundle."""
    if isinstance(verify, str):
        return _ca_bundle_context(verify)
    return bool(verify)


@cache
def _ca_bundle_context(path: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=path)


def _origin(url: str) -> str:
    # scheme://host:port only: paths and query strings may carry secrets (e.g. ?key=)
    parts = url.split("/", 3)
    return "/".join(parts[:3])


def _describe(exc: BaseException) -> str:
    # aiohttp's messages can embed the full URL; keep the class name and the OS-level reason.
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__} ({exc.os_error.strerror or exc.os_error})"
    return type(exc).__name__


def _timeout_message(seconds: float, *, connecting: bool = False) -> str:
    what = "connect to" if connecting else "send data from"
    return f"The upstream did not {what} relaystack within {seconds:g} s (timeouts.connect / timeouts.read)."
