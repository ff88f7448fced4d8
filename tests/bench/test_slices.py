"""Interleaved cells (run.py --slices): the order the slices run in, and how they are merged."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from harness import load, matrix


def _part(hist: list[list[int]], seconds: float = 1.0, cpu_s: float = 0.5, **extra: Any) -> dict[str, Any]:
    requests = sum(count for _, count in hist)
    return {"tool": "wrk", "requests": requests, "duration_s": seconds, "rps": requests / seconds,
            "p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "max_ms": hist[-1][0] / 1000, "errors": 0, "non2xx": 0,
            "hist": hist, "cpu_s": cpu_s, "rss_peak": 50 * 2**20, "accepts": 0, "drain_s": 0.25, **extra}


def test_merged_percentiles_come_from_the_merged_histogram_not_an_average_of_the_slices() -> None:
    fast = _part([[1000, 98], [2000, 2]])  # 100 requests: p99 2 ms
    slow = _part([[1000, 50], [40000, 50]])  # 100 requests: p99 40 ms
    merged = load.merge_results([fast, slow])
    assert merged["requests"] == 200 and merged["duration_s"] == 2.0 and merged["rps"] == 100
    assert merged["p50_ms"] == 1.0  # 148 of 200 at 1 ms
    assert merged["p90_ms"] == 40.0  # the rank 181 lies in the slow slice's tail
    assert merged["p99_ms"] == 40.0 and merged["max_ms"] == 40.0
    assert merged["hist"] == [[1000, 148], [2000, 2], [40000, 50]]


def test_the_percentile_is_wrks_own_rank() -> None:
    hist = load._histogram([1.0, 2.0, 3.0, 4.0, 5.0])
    assert hist == [[1000, 1], [2000, 1], [3000, 1], [4000, 1], [5000, 1]]
    # wrk: rank = round(p / 100 * n + 0.5), the first value whose running count reaches it
    assert [load._hist_percentile(hist, 5, p) for p in (50, 90, 99)] == [3.0, 5.0, 5.0]
    assert load._hist_percentile(hist, 5, 20) == 2.0


def test_slices_run_in_turn_across_gateways_and_each_gateway_warms_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    class _Gateway:
        def __init__(self, name: str) -> None:
            self.name = name

    def measure(gateway: Any, upstream: Any, target: Any, conc: int, *, duration: float, **_: Any) -> dict[str, Any]:
        ran.append(f"{gateway.name}:{duration:g}")
        return _part([[1000 * len(ran), 10]], seconds=duration, cpu_s=0.01 * len(ran))

    monkeypatch.setattr(matrix, "target_for", lambda gateway, scenario, body_dir: gateway.name)
    monkeypatch.setattr(matrix, "run_load", lambda target, *args: ran.append(f"warm {target}"))
    monkeypatch.setattr(matrix, "measure_slice", measure)
    order: list[Any] = [_Gateway("raw"), _Gateway("store")]
    cells = matrix._interleaved(order, None, "chat", 16, slices=3, duration=3.0, warmup=1.0, load_cpus="1",  # type: ignore[arg-type]
                                tool="wrk", body_dir=Path("."))
    assert ran == ["warm raw", "raw:1", "warm store", "store:1", "raw:1", "store:1", "raw:1", "store:1"]
    raw, store = cells
    assert (raw["gateway"], store["gateway"]) == ("raw", "store")
    assert raw["requests"] == 30 and raw["duration_s"] == 3.0
    # raw's slices were the 2nd, 5th and 7th calls: 0.02 + 0.05 + 0.07 s of CPU over 30 requests
    assert raw["cpu_per_req_us"] == pytest.approx((0.02 + 0.05 + 0.07) / 30 * 1e6)
    assert raw["p99_ms"] == 7.0 and store["p50_ms"] == 6.0
    assert "hist" not in raw and "rss_peak" not in raw and raw["rss_peak_mb"] == 50
