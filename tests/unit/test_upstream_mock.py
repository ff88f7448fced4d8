"""The in-process double of the upstream seam: what providers' unit tests stand on."""

from __future__ import annotations

import pytest

from relaystack.errors import UpstreamConnectionError
from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.mock import MockResponse, MockUpstream


async def test_it_answers_with_the_handler_and_keeps_every_request() -> None:
    upstream = MockUpstream(lambda request: MockResponse.json({"url": request.url}, headers={"x-id": "1"}))
    response = await upstream.send(UpstreamRequest("GET", "http://h/models"))
    assert response.status == 200 and response.headers["x-id"] == "1"
    assert await response.read() == b'{"url":"http://h/models"}'
    await upstream.send(UpstreamRequest("POST", "http://h/chat", json={"a": 1}))
    assert [r.method for r in upstream.requests] == ["GET", "POST"] and upstream.last.json == {"a": 1}


async def test_async_handlers_streams_errors_and_transport_failures() -> None:
    async def handler(request: UpstreamRequest) -> MockResponse:
        if request.url.endswith("/down"):
            raise UpstreamConnectionError("refused")
        if request.url.endswith("/bad"):
            return MockResponse.error(429, "slow down", type="rate_limit_error", headers={"Retry-After": "2"})
        return MockResponse.sse([{"n": 1}, {"n": 2}])

    upstream = MockUpstream(handler)
    stream = await upstream.send(UpstreamRequest("POST", "http://h/stream"))
    assert [c async for c in stream.iter_chunks()] == [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n', b"data: [DONE]\n\n"]
    assert stream.headers["Content-Type"] == "text/event-stream"
    bad = await upstream.send(UpstreamRequest("POST", "http://h/bad"))
    assert bad.status == 429 and bad.headers["Retry-After"] == "2" and b"slow down" in await bad.read()
    with pytest.raises(UpstreamConnectionError):
        await upstream.send(UpstreamRequest("POST", "http://h/down"))


async def test_a_canned_response_is_fresh_for_every_request() -> None:
    canned = MockResponse.sse([{"n": 1}])
    upstream = MockUpstream(lambda request: canned)
    first = await upstream.send(UpstreamRequest("POST", "http://h"))
    await first.aclose()
    second = await upstream.send(UpstreamRequest("POST", "http://h"))
    assert not second.closed and len([c async for c in second.iter_chunks()]) == 2
    await upstream.aclose()
    assert upstream.closed
