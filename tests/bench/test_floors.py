"""bench/run.py --check's verdicts: the best round against the floor, a missing relaystack fails."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from harness.floors import FLOORS, GATEWAY, check_conc, evaluate, failing


def cell(scenario: str, gateway: str, cpu: float, round_: int, conc: int = 16) -> dict[str, Any]:
    return {"scenario": scenario, "gateway": gateway, "conc": conc, "round": round_, "cpu_per_req_us": cpu}


def test_a_scenario_passes_when_its_best_round_reaches_the_floor() -> None:
    floor = FLOORS["chat"]
    cells = [cell("chat", "raw", 100, 1), cell("chat", GATEWAY, 100 / (floor - 0.1), 1),  # a noisy round
             cell("chat", "raw", 100, 2), cell("chat", GATEWAY, 100 / (floor + 0.1), 2)]
    [result] = evaluate(cells, ["chat"], 16)
    assert result["ok"] and len(result["ratios"]) == 2 and result["best"] > floor


def test_a_regression_below_the_floor_in_every_round_fails() -> None:
    cells = [cell("sse500", "raw", 100, r) for r in (1, 2)] + [cell("sse500", GATEWAY, 1000, r) for r in (1, 2)]
    assert failing(evaluate(cells, ["sse500", "models"], 16)) == ["sse500"]  # models has no floor


def test_without_relaystack_cells_the_check_fails_and_the_concurrency_is_16_or_the_first() -> None:
    assert failing(evaluate([cell("chat", "raw", 100, 1)], ["chat"], 16)) == ["chat"]
    assert check_conc([1, 16, 64]) == 16 and check_conc([4]) == 4
