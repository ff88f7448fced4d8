#!/usr/bin/env python3
"""relaystack's own CPU per request, without sockets: where the gap to the raw relay comes from.

The app is built from a bench config (``configs/relaystack-store.yaml`` by default) with every
provider's upstream replaced by an in-memory double that answers the bench's fixed bodies
(``harness/bodies.py``), and driven through ASGI directly (no uvicorn, no client, no aiohttp).
What remains is relaystack's own work per request: body parsing, checks, the gate, the router,
the provider, the answer's handling, the store write (its writer thread included), the access
log and the metric hooks. The raw relay does none of it, so this is the part of the
``x raw by CPU`` gap that relaystack's code can close (the rest is uvicorn and aiohttp, which
both pay).

    python bench/hotpath.py                              # every scenario, CPU µs per request
    python bench/hotpath.py --only chat,sse500 --profile # plus a cProfile of each (top functions)
    python bench/hotpath.py --config relaystack-nostore.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness.bodies import UNIQUE_ID_PATHS, request_body, upstream_files, with_new_id  # noqa: E402
from harness.scenarios import ENDPOINTS, MODELS  # noqa: E402

try:
    from relaystack.api.asgi import DISCONNECT_HOOKS
except ImportError:  # a relaystack from before the server's disconnect hook: the key is ignored
    DISCONNECT_HOOKS = "relaystack.on_disconnect"

SCENARIOS = ("chat", "chat1k", "chat4k", "embed", "embed32", "sse500", "completions")
READ_SIZE = 65536  # the stream is handed over in pieces of this size, as a socket read would


class _Answer:
    """One canned upstream answer: the UpstreamResponse protocol over bytes in memory."""

    __slots__ = ("body", "first", "headers", "skip", "status")

    def __init__(self, body: bytes, kind: str, first: bytes = b"", skip: int = 0) -> None:
        self.status = 200
        self.headers: Mapping[str, str] = {"Content-Type": kind}
        self.body = body
        self.first = first  # handed over before the body (a stream's first event, with a new id)
        self.skip = skip  # ... in place of the body's first ``skip`` bytes

    async def read(self) -> bytes:
        return self.body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self.first:
            yield self.first
        body = self.body
        for start in range(self.skip, len(body), READ_SIZE):
            yield body[start:start + READ_SIZE]

    async def aclose(self) -> None:
        return None


class MemoryUpstream:
    """Every provider's upstream: the bench's bodies by URL path, no socket."""

    def __init__(self, files: dict[str, bytes], unique_ids: bool = False) -> None:
        self.files = files
        self.unique_ids = unique_ids
        self.streams = 0

    async def send(self, request: Any) -> _Answer:
        path = request.url.split("//", 1)[1].split("/", 1)[1]
        body = self.files[path]
        kind = "text/event-stream" if path.startswith("sse") else "application/json"
        if not self.unique_ids or path not in UNIQUE_ID_PATHS:
            return _Answer(body, kind)
        # a new completion id, as a real upstream (and the bench's nginx) sends: every stored answer
        # is a new row instead of an update of one. A stream's first event only (no copy of the body)
        self.streams += 1
        if kind == "application/json":
            return _Answer(with_new_id(body, self.streams), kind)
        cut = body.index(b"\n\n") + 2
        return _Answer(body, kind, with_new_id(body[:cut], self.streams), cut)

    async def aclose(self) -> None:
        return None


ADMIN_KEY = "bench-admin-key-" + "0" * 24  # as bench/run.py gives relaystack-gateway


def build_app(config_name: str, store_dir: str, unique_ids: bool = False) -> Any:
    os.environ.setdefault("BENCH_UPSTREAM", "http://bench.invalid")
    os.environ.setdefault("RELAYSTACK_ADMIN_KEY", ADMIN_KEY)  # read only by a config with server.auth
    os.environ["BENCH_STORE_DIR"] = store_dir
    from relaystack.api.app import create_app
    from relaystack.config import load_run_config
    from relaystack.logs import configure_logging

    configure_logging("warning", "text")
    app = create_app(load_run_config(str(BENCH / "configs" / config_name)))
    upstream = MemoryUpstream(upstream_files(), unique_ids)
    for provider in app.providers:
        provider.upstream = upstream
    return app


async def one_request(app: Any, path: str, body: bytes, token: bytes = b"bench") -> int:
    """One POST through the app's ASGI entry; the status it answered."""
    status, _ = await _post(app, path, body, token)
    return status


async def _post(app: Any, path: str, body: bytes, token: bytes) -> tuple[int, bytes]:
    done = asyncio.Event()
    sent = False
    status = 0
    answer: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # as uvicorn does: nothing more until the response is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            return
        answer.append(message.get("body", b""))
        if not message.get("more_body"):
            done.set()

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8321),
             "headers": [(b"host", b"127.0.0.1:8321"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()), (b"authorization", b"Bearer " + token)],
             DISCONNECT_HOOKS: []}  # as relaystack's server gives it (server/protocol.py)
    await app(scope, receive, send)
    return status, b"".join(answer)


async def bench_token(app: Any) -> bytes:
    """A virtual key with limits and a budget, checked on every request but never reached (as
    bench/run.py gives relaystack-gateway), when the app has server.auth; else a dummy."""
    if app.config.server.auth is None:
        return b"bench"
    body = json.dumps({"name": "bench", "limits": {"rpm": 10**8, "tpm": 10**11, "max_concurrent": 10**4},
                       "budget": {"max_usd": 10**9, "period": "month"}}).encode()
    status, answer = await _post(app, "/v1/admin/keys", body, ADMIN_KEY.encode())
    if status != 201:
        raise RuntimeError(f"creating the bench key: status {status}: {answer[:300]!r}")
    return str(json.loads(answer)["key"]).encode()


async def run_scenario(app: Any, scenario: str, requests: int, conc: int, token: bytes = b"bench") -> float:
    """CPU µs per request (this process, every thread) for ``requests`` requests at ``conc``."""
    path = "/v1/" + ENDPOINTS[scenario]
    body = request_body(scenario)
    assert body is not None and MODELS[scenario]
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status = await one_request(app, path, body, token)
            if status != 200:
                raise RuntimeError(f"{scenario}: status {status}")

    await asyncio.gather(*(worker() for _ in range(min(conc, requests))))  # warm-up: same count
    left = requests
    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(conc)))
    await asyncio.sleep(0.05)  # the writer thread's last commit
    return (time.process_time() - cpu) / requests * 1e6


def top_functions(profile: cProfile.Profile, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    return out.getvalue()


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="hotpath-") as store_dir:
        app = build_app(args.config, store_dir, args.unique_ids)
        await app.startup()
        token = await bench_token(app)
        try:
            for scenario in args.only.split(","):
                requests = max(50, args.requests // (20 if scenario == "embed32" else 1))
                runs = [await run_scenario(app, scenario, requests, args.conc, token) for _ in range(args.repeat)]
                print(f"{scenario:<12} {min(runs):8.1f} µs CPU/request (best of {args.repeat}; "
                      f"all {', '.join(f'{r:.0f}' for r in runs)})", flush=True)
                if args.profile:
                    profile = cProfile.Profile()
                    profile.enable()
                    await run_scenario(app, scenario, requests, args.conc, token)
                    profile.disable()
                    print(top_functions(profile, args.top))
        finally:
            await app.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--config", default="relaystack-store.yaml")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile each scenario once more")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--fixed-ids", dest="unique_ids", action="store_false",
                        help="every answer the body's one completion id (the store updates one row) instead of a "
                             "new id per answer, as a real upstream and the bench's nginx send")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main_async(args))
    except ImportError:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
