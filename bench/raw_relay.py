"""The minimal raw pass-through: the lower bound every gateway is compared with.

Raw ASGI on uvicorn (httptools + uvloop), one shared pooled aiohttp session, the request and
response bodies relayed as bytes: no routing, no validation, no parsing. Nothing real can be
cheaper in Python, so "x raw" in the report is what a gateway's own work costs.
Usage: python bench/raw_relay.py --port P --upstream http://127.0.0.1:U
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvicorn

UPSTREAM = ""
_session: aiohttp.ClientSession | None = None


async def _lifespan(receive: Any, send: Any) -> None:
    global _session
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _session is not None:
                await _session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    assert _session is not None
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    url = UPSTREAM + scope["path"] + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    async with _session.request(scope["method"], url, data=body or None, headers=headers) as resp:
        kind = resp.headers.get("Content-Type", "application/json").encode()
        await send({"type": "http.response.start", "status": resp.status, "headers": [(b"content-type", kind)]})
        async for chunk in resp.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def main() -> None:
    global UPSTREAM
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    args = parser.parse_args()
    UPSTREAM = args.upstream.rstrip("/")
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
