"""One cell = one gateway x scenario x concurrency for a fixed time; the matrix interleaves them.

Within a round every gateway runs a cell back to back (the order rotates each round), so a
neighbour's load or a thermal change hits all gateways alike: compare within a round, then take
the median of the per-round ratios.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.bodies import request_body
from harness.gateways import Gateway
from harness.load import Target, run_load
from harness.procs import RssSampler
from harness.scenarios import method, serves
from harness.upstream import Upstream


def target_for(gateway: Gateway, scenario: str, body_dir: Path) -> Target:
    model = gateway.model_for(scenario)
    body = request_body(scenario, model)
    body_file = None
    if body is not None:
        body_file = body_dir / (f"{gateway.name}-{scenario}.json" if model else f"{scenario}.json")
        if not body_file.exists():
            body_dir.mkdir(parents=True, exist_ok=True)
            body_file.write_bytes(body)
    return Target(gateway.url(scenario), method(scenario), body, body_file)


def wait_idle(gateway: Gateway, limit: float = 30.0, threshold: float = 0.05) -> float:
    """Wait until the gateway stops using CPU (a tail of logging must not bleed into the next cell)."""
    if gateway.proc is None:
        return 0.0
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = gateway.proc.cpu_seconds()
        time.sleep(0.25)
        if gateway.proc.cpu_seconds() - before < threshold * 0.25:
            break
    return time.monotonic() - start


def run_cell(gateway: Gateway, upstream: Upstream, scenario: str, conc: int, *, duration: float,
             warmup: float, load_cpus: str, tool: str, body_dir: Path) -> dict[str, Any]:
    target = target_for(gateway, scenario, body_dir)
    if warmup > 0:
        run_load(target, conc, warmup, load_cpus, tool)
    proc = gateway.proc
    cpu0 = proc.cpu_seconds() if proc else None
    acc0 = upstream.accepts()
    with RssSampler(proc) as rss:
        result = run_load(target, conc, duration, load_cpus, tool)
    cpu1 = proc.cpu_seconds() if proc else None
    acc1 = upstream.accepts()
    requests = max(1, result["requests"])
    cell: dict[str, Any] = {"gateway": gateway.name, "scenario": scenario, "conc": conc, **result}
    if cpu0 is not None and cpu1 is not None:
        cell["cpu_s"] = cpu1 - cpu0
        cell["cpu_per_req_us"] = (cpu1 - cpu0) / requests * 1e6
        cell["core_pct"] = (cpu1 - cpu0) / result["duration_s"] * 100 if result["duration_s"] else None
        cell["rss_peak_mb"] = rss.peak / 2**20
    if acc0 is not None and acc1 is not None and gateway.name != "upstream":
        cell["up_conn_per_req"] = (acc1 - acc0) / requests
    cell["drain_s"] = wait_idle(gateway)
    return cell


def describe(cell: dict[str, Any]) -> str:
    parts = [f"{cell['rps']:>9,.1f} req/s", f"p50 {cell['p50_ms']:7.2f} ms", f"p99 {cell['p99_ms']:8.2f} ms"]
    if "cpu_per_req_us" in cell:
        parts += [f"cpu/req {cell['cpu_per_req_us']:8,.0f} µs", f"core {cell['core_pct']:3.0f}%",
                  f"rss {cell['rss_peak_mb']:5.0f} MB"]
    bad = cell["errors"] + cell["non2xx"]
    parts.append(f"err {bad}" if bad else "ok")
    return "  ".join(parts)


def run_matrix(gateways: list[Gateway], upstream: Upstream, *, scenarios: list[str], concs: list[int],
               rounds: int, duration: float, warmup: float, load_cpus: str, tool: str, body_dir: Path,
               log: Callable[[str], None]) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    total = rounds * len(concs) * sum(serves(g.name, s) for s in scenarios for g in gateways)
    started = time.monotonic()
    for rnd in range(rounds):
        for scenario in scenarios:
            for conc in concs:
                shift = rnd % len(gateways)
                for gateway in gateways[shift:] + gateways[:shift]:
                    if not serves(gateway.name, scenario):
                        continue
                    cell = run_cell(gateway, upstream, scenario, conc, duration=duration, warmup=warmup,
                                    load_cpus=load_cpus, tool=tool, body_dir=body_dir)
                    cell["round"] = rnd + 1
                    cells.append(cell)
                    done = len(cells)
                    eta = (time.monotonic() - started) / done * (total - done)
                    log(f"[round {rnd + 1}/{rounds} {done:>3}/{total} eta {eta / 60:4.1f} min] "
                        f"{scenario:<11} c={conc:<3} {gateway.name:<18} {describe(cell)}")
    return cells
