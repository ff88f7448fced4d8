"""relaystack's HTTP/1.1 upstream client against raw sockets that misbehave on purpose: keep-alive,
chunked and close-delimited bodies, compression, timeouts, broken and stale connections, the
pool's limit, TLS, and what it refuses to send."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from relaystack.errors import UpstreamConnectionError, UpstreamTimeoutError
from relaystack.upstream.base import Timeouts, UpstreamRequest
from relaystack.upstream.http_client import HttpUpstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    def __init__(self) -> None:
        self.accepted = 0
        self.requests: list[bytes] = []
        self.port = 0


@asynccontextmanager
async def serve(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    state = Server()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted += 1
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


async def read_request(reader: asyncio.StreamReader, state: Server | None = None) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    body = await reader.readexactly(length) if length else b""
    if state is not None:
        state.requests.append(head + body)
    return head + body


def answer(body: bytes, *, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
            + extra + b"\r\n" + body)


def request(port: int, *, method: str = "POST", body: bytes | None = b"{}", read: float = 5.0,
            scheme: str = "http", path: str = "/v1/chat/completions", verify: bool | str = True,
            headers: dict[str, str] | None = None) -> UpstreamRequest:
    return UpstreamRequest(method, f"{scheme}://127.0.0.1:{port}{path}", {"Content-Type": "application/json",
                           **(headers or {})}, body, None, False, Timeouts(2.0, read), None, verify)


async def test_keep_alive_reuses_one_connection_and_sends_what_a_gateway_should() -> None:
    state_box: list[Server] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, state_box[0])
            writer.write(answer(b'{"ok":true}', extra=b"Retry-After: 3\r\nX-A: 1\r\nx-a: 2\r\n"))
            await writer.drain()

    async with serve(handler) as state:
        state_box.append(state)
        client = HttpUpstream()
        for _ in range(3):
            response = await client.send(request(state.port, headers={"Authorization": "Bearer k"}))
            assert response.status == 200 and await response.read() == b'{"ok":true}'
            assert response.headers.get("retry-after") == "3" and response.headers["RETRY-AFTER"] == "3"
            assert response.headers.get("X-A") == "1, 2"
        await client.aclose()
    assert state.accepted == 1
    head = state.requests[0].split(b"\r\n\r\n")[0].decode().split("\r\n")
    assert head[0] == "POST /v1/chat/completions HTTP/1.1"
    assert {f"Host: 127.0.0.1:{state.port}", "User-Agent: relaystack", "Content-Length: 2",
            "Authorization: Bearer k", "Accept-Encoding: gzip, deflate"} <= set(head)


async def test_a_chunked_stream_arrives_piece_by_piece_as_sent() -> None:
    go = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"7\r\ndata: 1\r\n")
        await writer.drain()
        await go.wait()
        writer.write(b"7\r\ndata: 2\r\n0\r\n\r\n")
        await writer.drain()

    async with serve(handler) as state:
        client = HttpUpstream()
        response = await client.send(request(state.port))
        pieces = response.iter_chunks()
        assert await pieces.__anext__() == b"data: 1"
        go.set()
        assert [p async for p in pieces] == [b"data: 2"]
        await response.aclose()
        await client.aclose()


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
])
async def test_compressed_bodies_are_decoded(encoding: str, encode: Callable[[bytes], bytes]) -> None:
    body = b'{"text":"' + b"hello " * 2000 + b'"}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(encode(body), extra=f"Content-Encoding: {encoding}\r\n".encode()))
        await writer.drain()

    async with serve(handler) as state:
        client = HttpUpstream()
        assert await (await client.send(request(state.port))).read() == body
        await client.aclose()


async def test_a_body_that_runs_until_the_connection_closes_is_read_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 100_000)
        await writer.drain()

    async with serve(handler) as state:
        client = HttpUpstream()
        assert await (await client.send(request(state.port))).read() == b"x" * 100_000
        await client.aclose()


async def test_a_refused_connection_names_the_origin_only() -> None:
    async with serve(read_request) as state:  # type: ignore[arg-type]
        port = state.port
    client = HttpUpstream()
    wanted = UpstreamRequest("POST", f"http://user:secret@127.0.0.1:{port}/v1/x?key=secret", {}, b"{}")
    with pytest.raises(UpstreamConnectionError) as caught:
        await client.send(wanted)
    assert f"Could not reach the upstream at http://127.0.0.1:{port}:" in caught.value.message
    assert "secret" not in caught.value.message


async def test_silence_past_the_read_timeout_fails_before_the_answer_and_mid_body() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read(1)  # until the client hangs up

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        for _ in range(3):  # data every 0.1 s keeps a 0.3 s read timeout from firing
            await asyncio.sleep(0.1)
            writer.write(b"d")
            await writer.drain()
        await reader.read(1)

    client = HttpUpstream()
    async with serve(mute) as state:
        with pytest.raises(UpstreamTimeoutError, match=r"within 0\.3 s"):
            await client.send(request(state.port, read=0.3))
    async with serve(stalls) as state:
        response = await client.send(request(state.port, read=0.3))
        with pytest.raises(UpstreamTimeoutError):
            await response.read()
    await client.aclose()


async def test_a_connection_broken_mid_body_is_an_error_never_a_short_answer() -> None:
    async def breaks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    async with serve(breaks) as state:
        client = HttpUpstream()
        response = await client.send(request(state.port))
        with pytest.raises(UpstreamConnectionError, match="broke mid-stream"):
            _ = [p async for p in response.iter_chunks()]
        response = await client.send(request(state.port))
        with pytest.raises(UpstreamConnectionError, match="broke while reading"):
            await response.read()
        await client.aclose()


async def test_closing_an_unfinished_answer_closes_its_connection() -> None:
    closed = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        if await reader.read(1) == b"":  # the client hung up: the generation would stop here
            closed.set()

    async with serve(endless) as state:
        client = HttpUpstream()
        response = await client.send(request(state.port))
        assert await response.iter_chunks().__anext__() == b"hello"
        await response.aclose()
        await asyncio.wait_for(closed.wait(), 2)
        await client.aclose()


async def test_a_kept_connection_the_server_closed_is_not_reused() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))  # keep-alive announced, then closed anyway
        await writer.drain()

    async with serve(once) as state:
        client = HttpUpstream()
        for _ in range(3):
            await (await client.send(request(state.port))).read()
            await asyncio.sleep(0.05)  # the server's FIN arrives
        await client.aclose()
    assert state.accepted == 3


@pytest.mark.parametrize("method, retried", [("GET", True), ("POST", False)])
async def test_a_reused_connection_that_breaks_before_answering_retries_only_idempotent_requests(
    method: str, retried: bool
) -> None:
    async def second_dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()
        await read_request(reader)  # the second request on this connection: hang up, no answer

    async with serve(second_dies) as state:
        client = HttpUpstream()
        body = None if method == "GET" else b"{}"
        await (await client.send(request(state.port, method=method, body=body))).read()
        if retried:
            assert await (await client.send(request(state.port, method=method, body=body))).read() == b"{}"
        else:
            with pytest.raises(UpstreamConnectionError, match="Could not get an answer"):
                await client.send(request(state.port, method=method, body=body))
        await client.aclose()
    assert state.accepted == (2 if retried else 1)


async def test_the_pool_opens_at_most_limit_connections_per_origin() -> None:
    active = 0
    peak = 0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active, peak
        while True:
            await read_request(reader)
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.05)
            active -= 1
            writer.write(answer(b"{}"))
            await writer.drain()

    async with serve(slow) as state:
        client = HttpUpstream(limit=2)

        async def one() -> bytes:
            return await (await client.send(request(state.port))).read()

        assert await asyncio.gather(*(one() for _ in range(6))) == [b"{}"] * 6
        await client.aclose()
    assert state.accepted == 2 and peak == 2


async def test_a_large_body_read_slowly_arrives_whole() -> None:
    size = 5 * 1024 * 1024

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"z" * 65536)
            await writer.drain()

    async with serve(big) as state:
        client = HttpUpstream()
        response = await client.send(request(state.port, read=2.0))
        received = 0
        async for piece in response.iter_chunks():
            received += len(piece)
            await asyncio.sleep(0.002)
        assert received == size
        await client.aclose()


async def test_a_header_with_a_line_break_is_never_sent() -> None:
    client = HttpUpstream()
    with pytest.raises(UpstreamConnectionError, match="line break"):
        await client.send(request(1, headers={"X-Evil": "a\r\nInjected: 1"}))


async def test_credentials_in_the_url_become_basic_auth() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer(b"{}"))
        await writer.drain()

    async with serve(handler) as state:
        client = HttpUpstream()
        url = f"http://al%40ice:p%3Ass@127.0.0.1:{state.port}/v1/models"
        await (await client.send(UpstreamRequest("GET", url, {}))).read()
        await client.aclose()
    assert b"Authorization: Basic YWxAaWNlOnA6c3M=\r\n" in seen[0]  # al@ice:p:ss
    assert b"Host: 127.0.0.1:%d\r\n" % state.port in seen[0]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
async def test_tls_with_a_ca_bundle_without_verification_and_refused_by_default(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(  # noqa: ASYNC221 (a one-off certificate before the test starts)
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b'{"tls":true}'))
        await writer.drain()

    async with serve(handler, tls) as state:
        client = HttpUpstream()
        for verify in (str(cert), False):
            response = await client.send(request(state.port, scheme="https", verify=verify))
            assert await response.read() == b'{"tls":true}'
        with pytest.raises(UpstreamConnectionError, match=r"Could not reach the upstream at https://127\.0\.0\.1"):
            await client.send(request(state.port, scheme="https", verify=True))
        await client.aclose()
