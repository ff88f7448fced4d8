"""Where a front-end request's time goes: relaystack in-process, driven over ASGI (no HTTP server,
no client), against the bench's fake upstream (nginx, a separate process).

For each scenario it runs the same request many times at a fixed concurrency on one event loop
and prints this process's CPU time per request (user + system): the gateway's own work, the
upstream's HTTP client included, the client's HTTP server and sockets excluded), and its minor
page faults. ``--profile`` adds a cProfile (on CPU time) of one scenario. Besides the six default
scenarios, ``sse50``, ``responses50`` and ``messages50`` (the 50-event stream) separate what a
request costs from what each event costs.

    .venv/bin/python bench/frontend_profile.py                            # the six scenarios
    .venv/bin/python bench/frontend_profile.py --only responses500 --profile responses500
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness.bodies import request_body  # noqa: E402
from harness.upstream import start_upstream  # noqa: E402

SCENARIOS = ("sse500", "responses500", "messages500", "chat", "responses", "messages")
# besides: sse50, responses50, messages50 (the 50-event stream: per-request vs per-event costs)
_FAULTS: dict[str, float] = {}  # minor page faults per request in a scenario's last cell
PATHS = {"chat": "/v1/chat/completions", "sse": "/v1/chat/completions", "responses": "/v1/responses",
         "messages": "/v1/messages"}


def _body(scenario: str) -> tuple[str, bytes]:
    """(path, body) of a scenario; ``responses50`` and ``messages50`` name the 50-event stream."""
    kind = scenario.rstrip("0123456789")
    if scenario in ("responses50", "messages50"):
        body = request_body(scenario.replace("50", "500"))
        assert body is not None
        return PATHS[kind], body.replace(b"bench-sse500", b"bench-sse50")
    body = request_body(scenario)
    assert body is not None
    return PATHS[kind], body


async def _request(app: Any, path: str, body: bytes) -> int:
    """One POST through the ASGI app; the number of body bytes it answered."""
    sent = False
    size = 0
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal size
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"), (b"host", b"bench")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8321)}  # fmt: skip
    await app(scope, receive, send)
    done.set()
    return size


async def _cell(app: Any, scenario: str, requests: int, conc: int) -> float:
    """CPU µs per request over ``requests`` requests at ``conc`` concurrent."""
    path, body = _body(scenario)
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await _request(app, path, body)

    start, faults = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    await asyncio.gather(*(worker() for _ in range(conc)))
    _FAULTS[scenario] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / requests
    return (time.process_time() - start) / requests * 1e6


async def _main(args: argparse.Namespace) -> None:
    from relaystack.api.app import create_app
    from relaystack.config import load_run_config

    app = create_app(load_run_config(str(BENCH / "configs" / f"{args.config}.yaml")))
    await app.startup()
    try:
        scenarios = args.only.split(",") if args.only else list(SCENARIOS)
        for scenario in scenarios:  # warm-up: connections, caches
            await _cell(app, scenario, 50, args.conc)
        results: dict[str, list[float]] = {s: [] for s in scenarios}
        for _ in range(args.rounds):
            for scenario in scenarios:
                results[scenario].append(await _cell(app, scenario, args.requests, args.conc))
        for scenario in scenarios:
            values = results[scenario]
            print(f"{scenario:13s} CPU/req µs: median {statistics.median(values):7.0f}   "
                  f"min {min(values):7.0f}   max {max(values):7.0f}   page faults/req {_FAULTS[scenario]:5.1f}")
        if args.profile:
            profiler = cProfile.Profile(time.process_time)  # CPU time: neighbours do not count
            profiler.enable()
            await _cell(app, args.profile, args.requests, args.conc)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    finally:
        await app.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated scenarios (default: all of " + ",".join(SCENARIOS) + ")")
    parser.add_argument("--requests", type=int, default=400, help="requests per cell")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--config", default="relaystack-store", help="a bench/configs/ name")
    parser.add_argument("--profile", help="a scenario to run once more under cProfile")
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="frontprof-") as tmp:
        upstream = start_upstream(Path(tmp), None)
        os.environ["BENCH_UPSTREAM"] = upstream.base
        os.environ["BENCH_STORE_DIR"] = str(Path(tmp) / "store")
        try:
            try:
                import uvloop

                uvloop.install()
            except ImportError:
                pass
            asyncio.run(_main(args))
        finally:
            upstream.stop()


if __name__ == "__main__":
    main()
