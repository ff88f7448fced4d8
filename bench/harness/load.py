"""Load generators: wrk with bench/load/bench.lua, or a pure-Python aiohttp loop.

Both return the same dict: requests, duration_s, rps, p50/p90/p99/max in ms, errors (socket
errors + timeouts) and non2xx. wrk is the real instrument; the Python loop is for smoke runs on
machines without wrk and for the soak (which needs an exact request count). The Python loop
shares its CPU with the harness and is far slower than wrk: never compare numbers across tools.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from harness.procs import taskset_prefix
from harness.scenarios import authorization

LUA = Path(__file__).resolve().parent.parent / "load" / "bench.lua"


@dataclass(frozen=True)
class Target:
    """One request to repeat: where, how, and with what body."""

    url: str
    method: str
    body: bytes | None
    body_file: Path | None = None


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(target: Target, conc: int, duration: float, cpus: str | None) -> dict[str, Any]:
    env = {**os.environ, "BENCH_METHOD": target.method, "BENCH_BODY_FILE": str(target.body_file or "")}
    cmd = [*taskset_prefix(cpus), "wrk", "-t1", f"-c{conc}", f"-d{max(1, round(duration))}s",
           "--timeout", "10s", "-s", str(LUA), target.url]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 60, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary (exit {proc.returncode}): {proc.stderr or proc.stdout}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6
    return {
        "tool": "wrk", "requests": raw["requests"], "duration_s": seconds,
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": raw["p50_us"] / 1e3, "p90_ms": raw["p90_us"] / 1e3, "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"], "non2xx": raw["status"],
    }


def _percentile(sorted_ms: list[float], pct: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * pct / 100))]


async def _py_load(targets: Sequence[Target], conc: int, duration: float | None, total: int | None,
                   on_count: Callable[[int], None] | None) -> dict[str, Any]:
    latencies: list[float] = []
    state = {"next": 0, "errors": 0, "non2xx": 0}
    deadline = time.monotonic() + duration if duration else float("inf")
    headers = {"Content-Type": "application/json", "Authorization": authorization()}

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline and (total is None or state["next"] < total):
            index = state["next"]
            state["next"] += 1
            target = targets[index % len(targets)]
            start = time.perf_counter()
            try:
                async with session.request(target.method, target.url, data=target.body, headers=headers) as r:
                    await r.read()
                    if not 200 <= r.status < 300:
                        state["non2xx"] += 1
            except (TimeoutError, aiohttp.ClientError):
                state["errors"] += 1
            latencies.append((time.perf_counter() - start) * 1e3)
            if on_count is not None:
                on_count(len(latencies))

    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc), timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(conc)))
    seconds = time.monotonic() - started
    latencies.sort()
    return {
        "tool": "python", "requests": len(latencies), "duration_s": seconds,
        "rps": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": _percentile(latencies, 50), "p90_ms": _percentile(latencies, 90),
        "p99_ms": _percentile(latencies, 99), "max_ms": latencies[-1] if latencies else float("nan"),
        "errors": state["errors"], "non2xx": state["non2xx"],
    }


def run_python(targets: Sequence[Target], conc: int, *, duration: float | None = None,
               total: int | None = None, on_count: Callable[[int], None] | None = None) -> dict[str, Any]:
    return asyncio.run(_py_load(targets, conc, duration, total, on_count))


def run_load(target: Target, conc: int, duration: float, cpus: str | None, tool: str) -> dict[str, Any]:
    if tool == "wrk":
        return run_wrk(target, conc, duration, cpus)
    return run_python([target], conc, duration=duration)
