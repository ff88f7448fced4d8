"""``bench/run.py --check``: relaystack against the raw relay of the same run, by CPU per request.

A guard against regressions, not a timed test: each floor is the ratio raw CPU/req ÷ relaystack
CPU/req (store on) that relaystack must keep, set at about two thirds of what it measures on a
shared 2-CPU machine (bench/README.md, "The guard"). CPU per request barely depends on what the
neighbours do, unlike req/s, but one cell of 1-3 s can still move by ±25 % when the machine is
loaded, so a floor leaves that much room, and a scenario found below its floor is measured once
more (raw and relaystack back to back) and passes if either round does: a real regression fails
both rounds, a noisy cell rarely fails two.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

__all__ = ["FLOORS", "GATEWAY", "check_conc", "describe", "evaluate", "failing"]

GATEWAY = "relaystack-store"
# scenario -> the lowest raw/relaystack CPU-per-request ratio accepted (today's, at c=16 and in the
# smoke's c=4: chat ~0.84, chat1k/chat4k ~0.75, embed ~1.0, embed32 ~0.85, sse50 ~0.5, sse500 ~0.3)
FLOORS: dict[str, float] = {
    "chat": 0.55, "chat1k": 0.5, "chat4k": 0.5, "completions": 0.55,
    "embed": 0.6, "embed32": 0.55,
    "sse50": 0.3, "sse500": 0.2,
}


def check_conc(concs: list[int]) -> int:
    """The concurrency the check reads: 16 (the targets'), else the first one run."""
    return 16 if 16 in concs else concs[0]


def evaluate(cells: list[dict[str, Any]], scenarios: list[str], conc: int) -> list[dict[str, Any]]:
    """Per floored scenario: the ratio of each round, the best of them, the floor and the verdict."""
    by_round: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for cell in cells:
        if cell["conc"] == conc and cell.get("cpu_per_req_us"):
            by_round[(cell["scenario"], cell.get("round", 1))][cell["gateway"]] = cell["cpu_per_req_us"]
    out = []
    for scenario in scenarios:
        if scenario not in FLOORS:
            continue
        ratios = [cpu["raw"] / cpu[GATEWAY] for (s, _), cpu in sorted(by_round.items())
                  if s == scenario and "raw" in cpu and GATEWAY in cpu]
        best = max(ratios) if ratios else None
        out.append({"scenario": scenario, "conc": conc, "ratios": ratios, "best": best, "floor": FLOORS[scenario],
                    "ok": best is not None and best >= FLOORS[scenario]})
    return out


def failing(results: list[dict[str, Any]]) -> list[str]:
    return [r["scenario"] for r in results if not r["ok"]]


def describe(result: dict[str, Any]) -> str:
    ratios = ", ".join(f"{r:.3f}" for r in result["ratios"]) or "not measured"
    verdict = "ok" if result["ok"] else "BELOW THE FLOOR"
    return (f"check {result['scenario']:<11} c={result['conc']:<3} raw/relaystack CPU per request: {ratios} "
            f"(floor {result['floor']}): {verdict}")
