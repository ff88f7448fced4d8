"""The report's target rows: which goal each scenario is held to."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from harness import report


def _row(scenario: str, p99_x_raw: float, cpu_x_raw: float) -> dict[str, Any]:
    return {"scenario": scenario, "conc": 16, "gateway": report.STORE_ON, "p99_x_raw": p99_x_raw,
            "cpu_x_raw": cpu_x_raw}


def test_a_byte_relay_tail_is_held_to_2x_raw_and_a_front_end_tail_to_2x_its_cost() -> None:
    rows = [_row("sse500", 2.5, 0.8), _row("messages500", 3.0, 0.55), _row("responses500", 5.5, 0.4)]
    verdicts = {t["target"]: (round(t["value"], 3), t["ok"]) for t in report.targets({"rows": rows})}
    assert verdicts["sse500 c=16 relaystack-store: p99 x raw"] == (2.5, False)
    scaled = {name.split(" ")[0]: v for name, v in verdicts.items() if "per its CPU" in name}
    assert scaled == {"messages500": (1.65, True), "responses500": (2.2, False)}
    cpu = {name.split(" ")[0]: v for name, v in verdicts.items() if "raw CPU/req" in name}
    assert cpu == {"sse500": (0.8, True), "messages500": (0.55, True), "responses500": (0.4, True)}
