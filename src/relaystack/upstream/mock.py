"""An in-process test double for the upstream seam, in the spirit of httpx's ``MockTransport``.

Give ``MockUpstream`` a handler: a function (sync or async) that gets each
``UpstreamRequest`` and returns a ``MockResponse`` (or raises, e.g.
``UpstreamConnectionError``, to play a transport failure). The provider under test sends
through it as it would through the live client, so a provider's quirks are unit-tested in
microseconds, without a socket::

    def handler(request: UpstreamRequest) -> MockResponse:
        assert request.headers["api-key"] == "k"
        return MockResponse.json({"object": "list", "data": []})

    provider = build_provider("azure", "remote::azure", {"api_base": "https://x", "api_key": "k"},
                              MockUpstream(handler))

``MockUpstream.requests`` keeps every request sent, in order, for assertions.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from relaystack import sse
from relaystack.upstream.base import UpstreamRequest

__all__ = ["MockResponse", "MockUpstream"]

Handler = Callable[[UpstreamRequest], "MockResponse | Awaitable[MockResponse]"]


@dataclass(slots=True)
class MockResponse:
    """One canned answer. ``chunks`` are delivered one by one by ``iter_chunks`` (a stream)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    closed: bool = False

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> MockResponse:
        return cls(status, {"Content-Type": "application/json", **(headers or {})}, [orjson.dumps(data)])

    @classmethod
    def text(cls, body: str | bytes, status: int = 200, content_type: str = "text/plain") -> MockResponse:
        raw = body.encode() if isinstance(body, str) else body
        return cls(status, {"Content-Type": content_type}, [raw])

    @classmethod
    def sse(cls, events: Iterable[Any], *, done: bool = True, status: int = 200) -> MockResponse:
        """Each event (a dict, or raw bytes already framed) becomes one chunk; ``done`` appends ``[DONE]``."""
        chunks = [e if isinstance(e, bytes) else sse.frame(orjson.dumps(e)) for e in events]
        if done:
            chunks.append(sse.DONE_EVENT)
        return cls(status, {"Content-Type": "text/event-stream"}, chunks)

    @classmethod
    def error(cls, status: int, message: str, *, type: str = "invalid_request_error",
              headers: Mapping[str, str] | None = None) -> MockResponse:
        body = {"error": {"message": message, "type": type, "param": None, "code": None}}
        return cls.json(body, status, headers)

    # -- the UpstreamResponse protocol ----------------------------------------------------
    async def read(self) -> bytes:
        return b"".join(self.chunks)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


class MockUpstream:
    """An ``Upstream`` that answers every request with ``handler(request)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[UpstreamRequest] = []
        self.closed = False

    async def send(self, request: UpstreamRequest) -> MockResponse:
        self.requests.append(request)
        result = self.handler(request)
        if inspect.isawaitable(result):
            result = await result
        assert isinstance(result, MockResponse), f"the handler returned {type(result).__name__}, not a MockResponse"
        # a fresh copy: a handler may return the same canned response for several requests
        return MockResponse(result.status, dict(result.headers), list(result.chunks))

    async def aclose(self) -> None:
        self.closed = True

    @property
    def last(self) -> UpstreamRequest:
        return self.requests[-1]
