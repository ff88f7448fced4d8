"""The x-ratelimit-* headers: rendered as lines for relaystack's server, as pairs elsewhere, the same."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest
from gateway_helpers import GatewayStack, bearer, chat

from relaystack.gateway.counters import Reported, Window
from relaystack.gateway.limit_headers import duration, header_lines, header_pairs, reset

_NAMES = [f"x-ratelimit-{what}-{kind}" for kind in ("requests", "tokens") for what in ("limit", "remaining", "reset")]


def _as_lines(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in pairs)


@pytest.mark.parametrize("reset_s", [0.0, 0.0004, 0.25, 1.0, 1.2, 58.5, 59.0, 59.5, 60.0, 3599.5, 90_000.0])
@pytest.mark.parametrize("used", [0, 7, 10, 12])
def test_lines_say_what_pairs_say(reset_s: float, used: int) -> None:
    rpm = Window("k:rpm", 10, 60, "requests", "rpm")
    tpm = Window("k:tpm", 1_000, 60, "tokens", "tpm")
    cases: list[tuple[Reported | None, Reported | None]] = [
        ((rpm, used, reset_s), (tpm, used * 100, reset_s)), ((rpm, used, reset_s), None),
        (None, (tpm, used, reset_s)), (None, None)]
    for requests, tokens in cases:
        pairs = header_pairs(requests, tokens)
        assert header_lines(requests, tokens) == _as_lines(pairs)
        assert reset(reset_s) == duration(reset_s).encode()
        if requests is not None:
            assert dict(pairs)[b"x-ratelimit-remaining-requests"] == str(max(10 - used, 0)).encode()


def test_a_json_answer_carries_each_header_once_through_the_server(gateway: GatewayStack) -> None:
    _, key = gateway.create_key(limits={"rpm": 5, "tpm": 10_000})
    response = httpx.post(gateway.base_url + "/v1/chat/completions", headers=bearer(key), json=chat())
    assert response.status_code == 200
    for name in _NAMES:
        assert len(response.headers.get_list(name)) == 1, name
    assert response.headers["x-ratelimit-limit-requests"] == "5"
    assert response.headers["x-ratelimit-remaining-requests"] == "4"
    assert response.headers["x-ratelimit-limit-tokens"] == "10000"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    assert response.headers["content-type"] == "application/json"
    assert response.json()["choices"]
    streamed = httpx.post(gateway.base_url + "/v1/chat/completions", headers=bearer(key), json=chat(stream=True))
    assert streamed.status_code == 200 and streamed.headers["x-ratelimit-remaining-requests"] == "3"


def test_pipelined_requests_each_get_their_headers(gateway: GatewayStack) -> None:
    """A request that is not the connection's current one is answered through uvicorn's own
    path: its headers are the same."""
    _, key = gateway.create_key(limits={"rpm": 50, "tpm": 100_000})
    url = urlsplit(gateway.base_url)
    body = json.dumps(chat()).encode()
    one = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {key}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(one * 3)
        received = b""
        while received.count(b"HTTP/1.1 200") < 3 or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    heads = [part.split(b"\r\n\r\n", 1)[0].lower() for part in received.split(b"HTTP/1.1 ")[1:]]
    assert len(heads) == 3
    remaining = []
    for head in heads:
        for name in _NAMES:
            assert head.count(name.encode() + b": ") == 1, (name, head)
        remaining.append(int(head.split(b"x-ratelimit-remaining-requests: ")[1].split(b"\r\n")[0]))
    assert sorted(remaining) == [47, 48, 49]
