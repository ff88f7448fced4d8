"""Python fake OpenAI upstream: the fallback when nginx is missing, and the slow TTFB stream.

Serves the same fixed bodies as the nginx config (bench/harness/bodies.py) with raw asyncio and
httptools. It is much slower than nginx (one Python core: a few thousand req/s), so when it is
the main upstream the report says so: the fast gateways may then be measuring this server.

``/ttfb/v1/chat/completions`` sends the first SSE event, waits ``--ttfb-delay`` seconds, then
the rest: a gateway that relays as it receives shows the first event well before the delay.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import httptools

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.bodies import UNIQUE_ID_PATHS, sse_event, upstream_files, with_new_id

TTFB_CHUNKS = 5


class Handler(asyncio.Protocol):
    """One connection: parse requests with httptools, answer each from the body table."""

    files: dict[bytes, bytes] = {}
    # the paths whose answers get a completion id of their own (bodies.UNIQUE_ID_PATHS)
    new_ids = frozenset(p.encode() for p in UNIQUE_ID_PATHS)
    ttfb_delay = 1.0
    accepts = 0
    requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Handler.accepts += 1
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        Handler.requests += 1
        path = httptools.parse_url(self.url).path.lstrip(b"/")
        self.url = b""
        if path == b"ttfb/v1/chat/completions":
            asyncio.get_running_loop().create_task(self._slow_stream())
        elif path == b"nginx_status":
            self._send(200, b"text/plain", self._status())
        elif path in self.files:
            kind = b"text/event-stream" if path.startswith(b"sse") else b"application/json"
            body = self.files[path]
            self._send(200, kind, with_new_id(body, Handler.requests) if path in self.new_ids else body)
        else:
            self._send(404, b"application/json", b'{"error":{"message":"no such path","type":"not_found"}}')

    def _status(self) -> bytes:
        n = f"{Handler.accepts} {Handler.accepts} {Handler.requests}"
        return f"Active connections: 0\nserver accepts handled requests\n {n} \n".encode()

    def _send(self, status: int, kind: bytes, body: bytes) -> None:
        head = b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (status, kind, len(body))
        self.transport.write(head + body)

    async def _slow_stream(self) -> None:
        def chunk(data: bytes) -> bytes:
            return b"%x\r\n%s\r\n" % (len(data), data)

        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        self.transport.write(head + chunk(sse_event("bench-ttfb", 0, TTFB_CHUNKS)))
        await asyncio.sleep(self.ttfb_delay)
        if self.transport.is_closing():
            return
        rest = b"".join(sse_event("bench-ttfb", i, TTFB_CHUNKS) for i in range(1, TTFB_CHUNKS))
        self.transport.write(chunk(rest + b"data: [DONE]\n\n") + b"0\r\n\r\n")


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Handler, "127.0.0.1", port, backlog=4096)
    print(f"fake upstream listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttfb-delay", type=float, default=1.0)
    args = parser.parse_args()
    Handler.files = {k.encode(): v for k, v in upstream_files().items()}
    Handler.ttfb_delay = args.ttfb_delay
    try:
        import uvloop

        uvloop.run(serve(args.port))
    except ImportError:
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
