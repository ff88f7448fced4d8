"""The checks that are not matrix cells: time to first event, the memory soak, worker scaling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.gateways import Gateway
from harness.load import Target, run_python
from harness.matrix import run_cell, target_for
from harness.scenarios import time_to_first_event
from harness.upstream import Upstream

TTFB_DELAY_S = 1.0  # what bench/upstream/fake_upstream.py waits after the first event
SOAK_MIX = ("chat", "sse50", "embed", "completions", "models")


def ttfb_checks(gateways: list[Gateway], log: Callable[[str], None]) -> dict[str, Any]:
    """First SSE event through each gateway from an upstream that stalls 1 s after it."""
    out: dict[str, Any] = {}
    for gateway in gateways:
        try:
            res = time_to_first_event(gateway.url("ttfb"), gateway.model_for("ttfb"))
        except OSError as exc:
            res = {"first_event_s": None, "total_s": None, "problems": [f"request failed: {exc}"]}
        first = res["first_event_s"]
        res["relayed_at_once"] = first is not None and first < TTFB_DELAY_S / 2
        out[gateway.name] = res
        shown = f"{first * 1e3:7.1f} ms" if first is not None else "   none"
        log(f"ttfb  {gateway.name:<18} first event after {shown} (upstream stalls {TTFB_DELAY_S:.0f} s "
            f"after it): {'relayed at once' if res['relayed_at_once'] else 'NOT relayed at once'}"
            + (f"  problems: {res['problems']}" if res["problems"] else ""))
    return out


def soak(gateway: Gateway, *, total: int, first_mark: int, conc: int, body_dir: Path,
         log: Callable[[str], None]) -> dict[str, Any]:
    """RSS of the gateway after ``first_mark`` and after ``total`` requests of a scenario mix."""
    assert gateway.proc is not None
    targets: list[Target] = [target_for(gateway, s, body_dir) for s in SOAK_MIX]
    step = max(1, first_mark // 2)
    marks = sorted({first_mark, total, *range(step, total + 1, step)})
    samples: list[dict[str, Any]] = []
    pending = list(marks)

    def on_count(count: int) -> None:
        if pending and count >= pending[0]:
            pending.pop(0)
            rss = gateway.proc.rss_bytes() / 2**20 if gateway.proc else 0.0
            samples.append({"requests": count, "rss_mb": rss})
            log(f"soak  {gateway.name:<18} {count:>7,} requests  rss {rss:6.1f} MB")

    result = run_python(targets, conc, total=total, on_count=on_count)
    at_first = next((s["rss_mb"] for s in samples if s["requests"] >= first_mark), None)
    at_end = samples[-1]["rss_mb"] if samples else None
    growth = (at_end - at_first) if at_first is not None and at_end is not None else None
    return {"gateway": gateway.name, "mix": list(SOAK_MIX), "conc": conc, "samples": samples,
            "first_mark": first_mark, "total": total, "rss_at_first_mark_mb": at_first,
            "rss_at_end_mb": at_end, "growth_mb": growth, "errors": result["errors"],
            "non2xx": result["non2xx"], "rps": result["rps"]}


def scaling(one: Gateway, two: Gateway, upstream: Upstream, *, rounds: int, duration: float,
            warmup: float, load_cpus: str | None, tool: str, body_dir: Path, scenarios: list[str],
            conc: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """One worker vs two workers, both on the same two CPUs, interleaved per round."""
    cells = []
    for rnd in range(rounds):
        for scenario in scenarios:
            pair = (one, two) if rnd % 2 == 0 else (two, one)
            for gateway in pair:
                cell = run_cell(gateway, upstream, scenario, conc, duration=duration, warmup=warmup,
                                load_cpus=load_cpus or "", tool=tool, body_dir=body_dir)
                cell["round"] = rnd + 1
                cells.append(cell)
                log(f"scale [round {rnd + 1}/{rounds}] {scenario:<11} c={conc} {gateway.name:<18} "
                    f"{cell['rps']:>9,.1f} req/s  cores used {cell.get('core_pct', 0) / 100:4.2f}  "
                    f"cpu/req {cell.get('cpu_per_req_us', 0):6,.0f} µs")
    return cells
