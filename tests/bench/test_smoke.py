"""The bench's smoke mode: every scenario answers correctly through every gateway.

This runs ``bench/run.py --smoke`` as CI would and reads the JSON it writes. It asserts
correctness only (valid JSON/SSE, ``[DONE]``, the right model id, every streamed token, the first
event relayed before the upstream's 1 s stall, no failed request under a short load), never a
speed: speed is the bench's report, not a test. Without nginx or wrk the bench falls back to
its Python upstream and load loop, so this test needs neither.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
SCENARIOS = {"chat", "chat1k", "chat4k", "sse50", "sse500", "embed", "embed32", "completions", "models", "responses",
             "responses500", "messages", "messages500"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    with subprocess.Popen([sys.executable, str(RUN), "--smoke", "--check", "--out", str(out), "--no-readme"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT) as proc:
        try:
            output, _ = proc.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            proc.terminate()  # run.py stops its gateways and upstream on SIGTERM
            output, _ = proc.communicate(timeout=30)
    found = sorted(out.glob("*-smoke.json"))
    assert found, f"the smoke run wrote no result (exit {proc.returncode}):\n{output}"
    result: dict[str, Any] = json.loads(found[-1].read_text())
    result["_exit"], result["_output"] = proc.returncode, output
    return result


def _assert_correct(result: dict[str, Any], gateway: str) -> None:
    checks = result["checks"].get(gateway)
    assert checks is not None, f"{gateway} was not checked: {result['start_failures']}\n{result['_output']}"
    assert set(checks) == SCENARIOS
    wrong = {scenario: problems for scenario, problems in checks.items() if problems}
    assert not wrong, f"{gateway} answered wrongly: {wrong}"
    ttfb = result["ttfb"][gateway]
    assert ttfb["problems"] == [], ttfb
    assert ttfb["relayed_at_once"], f"{gateway} held back the first stream event: {ttfb}"
    cells = [c for c in result["cells"] if c["gateway"] == gateway]
    assert {c["scenario"] for c in cells} >= {"chat", "embed", "sse500"}
    for cell in cells:
        assert cell["requests"] > 0, cell
        assert cell["errors"] == 0 and cell["non2xx"] == 0, cell


def test_smoke_run_succeeds(smoke: dict[str, Any]) -> None:
    assert smoke["_exit"] == 0, smoke["_output"]
    assert smoke["ok"] is True


def test_relaystack_keeps_its_cpu_floors_against_the_raw_relay(smoke: dict[str, Any]) -> None:
    """--check: CPU per request against the raw relay of the same run, above generous floors
    (bench/harness/floors.py says why they cannot flake on a loaded machine)."""
    if importlib.util.find_spec("relaystack") is None:
        pytest.skip("relaystack is not importable here (pip install -e .)")
    checked = {c["scenario"]: c for c in smoke["check"]}
    assert set(checked) == {"chat", "embed", "sse500"}, smoke["_output"]
    below = {s: c for s, c in checked.items() if not c["ok"]}
    assert not below, f"below the floor: {below}\n{smoke['_output']}"


@pytest.mark.parametrize("gateway", ["upstream", "raw"])
def test_reference_gateways_answer_correctly(smoke: dict[str, Any], gateway: str) -> None:
    _assert_correct(smoke, gateway)


@pytest.mark.parametrize("gateway", ["relaystack-store", "relaystack-nostore"])
def test_relaystack_answers_correctly(smoke: dict[str, Any], gateway: str) -> None:
    if importlib.util.find_spec("relaystack") is None:
        pytest.skip("relaystack is not importable here (pip install -e .)")
    _assert_correct(smoke, gateway)
