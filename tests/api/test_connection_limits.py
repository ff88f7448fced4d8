"""The limits a public server needs, probed with raw sockets against `relaystack run`:
431 for oversized headers, slow-loris and idle connections cut, a cap on connections and on
requests in progress answered with OpenAI's error shape (503 + Retry-After)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from support.server import RunningServer, start_server, write_config
from support.stack import CHAT_MODEL, issue_config

RECORDINGS = Path(__file__).parents[1] / "recordings" / "together"
LIMITS = {"max_header_bytes": 4096, "header_timeout_s": 1.0, "keepalive_timeout_s": 1.0,
          "max_concurrent_requests": 2, "max_connections": 8, "body_timeout_s": 1.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("limits")
    config = issue_config()
    config["server"] = {"port": 8321, **LIMITS}
    path = write_config(home / "run.yaml", config)
    running = start_server(path, home=home, args=["--record-mode", "replay", "--recordings", str(RECORDINGS)])
    yield running
    running.stop()


def connect(server: RunningServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_and_json(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), orjson.loads(body)


def test_headers_over_the_limit_get_431_and_the_connection_is_closed(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        status, body = status_and_json(read_all(sock))
    assert status == 431
    assert body["error"]["code"] == "request_header_fields_too_large"  # type: ignore[index]
    assert "server.max_header_bytes" in body["error"]["message"]  # type: ignore[index]
    # just under the limit is served
    with connect(server) as sock:
        sock.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Ok: " + b"a" * 3000 + b"\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 200")


def test_headers_over_the_limit_sent_in_pieces_get_431(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\n")
        for _ in range(7):  # 7 x 609 bytes: the last piece crosses 4096
            time.sleep(0.05)
            sock.sendall(b"X-Piece: " + b"b" * 600 + b"\r\n")
        status, _ = status_and_json(read_all(sock))
    assert status == 431


def test_a_slow_loris_client_is_cut_with_408(server: RunningServer) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v1/version HTTP/1.1\r\n")
        received = b""
        sock.settimeout(0.25)
        while time.monotonic() - started < 20:
            try:
                sock.sendall(b"X")  # one byte of a header every 0.25 s: never a complete request
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received
    assert elapsed < 20


def test_a_body_that_trickles_gets_408(server: RunningServer) -> None:
    body = b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}]}' % CHAT_MODEL.encode()
    with connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.3)
        sock.sendall(body[10:20])  # then nothing more: the rest never comes
        head = sock.recv(65536)
        while b"}" not in head.partition(b"\r\n\r\n")[2]:
            head += sock.recv(65536)
    status, error = status_and_json(head)
    assert status == 408 and error["error"]["code"] == "request_timeout"  # type: ignore[index]
    assert "1 s" in error["error"]["message"]  # type: ignore[index]


def test_a_connection_that_says_nothing_is_closed(server: RunningServer) -> None:
    with connect(server) as sock:
        assert read_all(sock) == b""


def test_an_idle_keep_alive_connection_is_closed(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"}" not in first:
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        assert read_all(sock) == b""  # then nothing, and the server closes


def test_requests_over_the_cap_get_503_in_openai_shape(server: RunningServer) -> None:
    held: list[httpx.Response] = []

    def hold() -> None:  # a replayed fault holds the request 6 s, then answers 429
        held.append(httpx.post(f"{server.base_url}/v1/chat/completions", timeout=60,
                               headers={"X-Relaystack-Fault": "status=429;stall=6"},
                               json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hold"}]}))

    threads = [threading.Thread(target=hold) for _ in range(int(LIMITS["max_concurrent_requests"]))]
    for thread in threads:
        thread.start()
    refused = None
    # probe until refused or the held requests are answered (a fixed deadline flaked on a loaded
    # machine, where the held requests reached the server late)
    while refused is None and any(thread.is_alive() for thread in threads):
        probe = httpx.get(f"{server.base_url}/v1/version", timeout=10)
        if probe.status_code == 503:
            refused = probe
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert refused is not None, "no request was refused while two were in progress"
    assert refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error["code"] == "server_overloaded" and "server.max_concurrent_requests" in error["message"]
    assert [r.status_code for r in held] == [429, 429]
    assert httpx.get(f"{server.base_url}/v1/version", timeout=10).status_code == 200


def test_connections_over_the_cap_get_503(server: RunningServer) -> None:
    socks = [connect(server) for _ in range(int(LIMITS["max_connections"]))]
    try:
        with connect(server) as extra:
            status, body = status_and_json(read_all(extra))
    finally:
        for sock in socks:
            sock.close()
    assert status == 503 and body["error"]["code"] == "server_overloaded"  # type: ignore[index]
    assert "server.max_connections" in body["error"]["message"]  # type: ignore[index]
