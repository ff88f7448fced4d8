"""One cell = one gateway x scenario x concurrency for a fixed time; the matrix interleaves them.

Within a round every gateway runs a cell back to back (the order rotates each round), so a
neighbour's load or a thermal change hits all gateways alike: compare within a round, then take
the median of the per-round ratios.

``slices`` > 1 cuts each cell into that many parts, run in turn across the gateways (raw, store,
nostore, raw, store, ...), each gateway's parts then merged into one cell (``merge_results``:
counts and CPU added up, percentiles from the merged histograms). On a machine whose speed drifts
within seconds (bench/README.md, "A stored chat answer's cost, taken apart") the gateways then see
the same moments, and their ratio moves less than their own figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.bodies import request_body
from harness.gateways import Gateway
from harness.load import Target, merge_results, run_load
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
    return finish_cell(gateway, scenario, conc, [measure_slice(gateway, upstream, target, conc, duration=duration,
                                                               load_cpus=load_cpus, tool=tool)])


def measure_slice(gateway: Gateway, upstream: Upstream, target: Target, conc: int, *, duration: float,
                  load_cpus: str, tool: str) -> dict[str, Any]:
    """One stretch of load on ``gateway``: the load's result, its CPU and RSS, then a drain."""
    proc = gateway.proc
    cpu0 = proc.cpu_seconds() if proc else None
    acc0 = upstream.accepts()
    with RssSampler(proc) as rss:
        result = run_load(target, conc, duration, load_cpus, tool)
    cpu1 = proc.cpu_seconds() if proc else None
    acc1 = upstream.accepts()
    if cpu0 is not None and cpu1 is not None:
        result["cpu_s"] = cpu1 - cpu0
        result["rss_peak"] = rss.peak
    if acc0 is not None and acc1 is not None:
        result["accepts"] = acc1 - acc0
    result["drain_s"] = wait_idle(gateway)
    return result


def finish_cell(gateway: Gateway, scenario: str, conc: int, slices: list[dict[str, Any]]) -> dict[str, Any]:
    """The cell of one gateway from its slices (one, or several interleaved with other gateways')."""
    result = merge_results(slices)
    # the slice's own figures are summed below; the run's JSON keeps no histograms
    for key in ("hist", "cpu_s", "rss_peak", "accepts", "drain_s"):
        result.pop(key, None)
    requests = max(1, result["requests"])
    cell: dict[str, Any] = {"gateway": gateway.name, "scenario": scenario, "conc": conc, **result}
    if all("cpu_s" in part for part in slices):
        cpu_s = sum(part["cpu_s"] for part in slices)
        cell["cpu_s"] = cpu_s
        cell["cpu_per_req_us"] = cpu_s / requests * 1e6
        cell["core_pct"] = cpu_s / result["duration_s"] * 100 if result["duration_s"] else None
        cell["rss_peak_mb"] = max(part["rss_peak"] for part in slices) / 2**20
    if all("accepts" in part for part in slices) and gateway.name != "upstream":
        cell["up_conn_per_req"] = sum(part["accepts"] for part in slices) / requests
    cell["drain_s"] = sum(part["drain_s"] for part in slices)
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
               log: Callable[[str], None], slices: int = 1) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    total = rounds * len(concs) * sum(serves(g.name, s) for s in scenarios for g in gateways)
    started = time.monotonic()
    for rnd in range(rounds):
        for scenario in scenarios:
            for conc in concs:
                shift = rnd % len(gateways)
                order = [g for g in gateways[shift:] + gateways[:shift] if serves(g.name, scenario)]
                for cell in _interleaved(order, upstream, scenario, conc, slices=slices, duration=duration,
                                         warmup=warmup, load_cpus=load_cpus, tool=tool, body_dir=body_dir):
                    cell["round"] = rnd + 1
                    cells.append(cell)
                    done = len(cells)
                    eta = (time.monotonic() - started) / done * (total - done)
                    log(f"[round {rnd + 1}/{rounds} {done:>3}/{total} eta {eta / 60:4.1f} min] "
                        f"{scenario:<11} c={conc:<3} {cell['gateway']:<18} {describe(cell)}")
    return cells


def _interleaved(order: list[Gateway], upstream: Upstream, scenario: str, conc: int, *, slices: int,
                 duration: float, warmup: float, load_cpus: str, tool: str, body_dir: Path) -> list[dict[str, Any]]:
    """Each gateway's cell; with ``slices`` > 1 their parts run in turn (a gateway's warm-up right
    before its first part). With one slice this is one cell after another, as it always was."""
    if slices <= 1:
        return [run_cell(gateway, upstream, scenario, conc, duration=duration, warmup=warmup,
                         load_cpus=load_cpus, tool=tool, body_dir=body_dir) for gateway in order]
    targets = {gateway.name: target_for(gateway, scenario, body_dir) for gateway in order}
    parts: dict[str, list[dict[str, Any]]] = {gateway.name: [] for gateway in order}
    for index in range(slices):
        for gateway in order:
            target = targets[gateway.name]
            if index == 0 and warmup > 0:
                run_load(target, conc, warmup, load_cpus, tool)
            parts[gateway.name].append(measure_slice(gateway, upstream, target, conc, duration=duration / slices,
                                                     load_cpus=load_cpus, tool=tool))
    return [finish_cell(gateway, scenario, conc, parts[gateway.name]) for gateway in order]
