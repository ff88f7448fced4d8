#!/usr/bin/env python3
"""The gateway benchmark, one command.

    python bench/run.py                     # full matrix: 3 rounds x 6 scenarios x c=1,16,64
    python bench/run.py --rounds 2 --duration 4 --only chat,sse500 --conc 16
    python bench/run.py --smoke --check     # CI: a few seconds, correctness and generous CPU floors
    python bench/run.py --no-matrix --soak  # RSS after 10k and 50k requests
    python bench/run.py --no-matrix --scaling

Gateways run under ``taskset -c 0``; wrk, nginx and this harness on CPU 1. Results go to
bench/results/<timestamp>.json, .md and .png; see bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import extras, floors, report
from harness.gateways import (
    Gateway,
    peer_gateways,
    raw_gateway,
    relaystack_gateway,
    relaystack_unavailable,
    upstream_gateway,
)
from harness.load import have_wrk
from harness.matrix import run_cell, run_matrix
from harness.procs import pin_self
from harness.scenarios import ROUTED_SCENARIOS, SCENARIOS, check, serves
from harness.upstream import Upstream, start_upstream

BENCH = Path(__file__).resolve().parent
SMOKE_LOAD = ("chat", "embed", "sse500")
T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="a few seconds: every scenario answers correctly")
    p.add_argument("--check", action="store_true",
                   help="exit non-zero when relaystack's CPU per request falls below a floor against the raw "
                        "relay of the same run (harness/floors.py)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=6.0, help="seconds per measured cell")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load before each cell")
    p.add_argument("--only", default=",".join(SCENARIOS),
                   help=f"scenarios, from {','.join(SCENARIOS + ROUTED_SCENARIOS)}")
    p.add_argument("--conc", default="1,16,64", help="concurrency levels")
    p.add_argument("--gateways", default="", help="only these gateways (default: all available)")
    p.add_argument("--no-peers", action="store_true", help="leave llama-stack and LiteLLM out")
    p.add_argument("--no-matrix", action="store_true", help="skip the matrix (with --soak/--scaling)")
    p.add_argument("--soak", action="store_true", help="RSS of relaystack after 10k and 50k requests")
    p.add_argument("--soak-requests", type=int, default=50_000)
    p.add_argument("--soak-mark", type=int, default=10_000)
    p.add_argument("--scaling", action="store_true", help="relaystack --workers 2 vs 1 on two CPUs")
    p.add_argument("--gateway-cpus", default="0")
    p.add_argument("--load-cpus", default="1")
    p.add_argument("--tool", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--python-upstream", action="store_true", help="use the Python fake even if nginx exists")
    p.add_argument("--out", default=str(BENCH / "results"))
    p.add_argument("--no-readme", action="store_true", help="do not rewrite README's Latest results")
    p.add_argument("--report", metavar="JSON", help="only re-render the .md/.png of an earlier run's JSON")
    return p.parse_args(argv)


def machine() -> str:
    model = ""
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
    except OSError:
        pass
    versions = []
    for tool, flag in (("nginx", "-v"), ("wrk", "--version")):
        if shutil.which(tool):
            out = subprocess.run([tool, flag], capture_output=True, text=True, check=False)
            text = (out.stderr or out.stdout or tool).split()
            versions.append(" ".join(text[:3] if tool == "nginx" else text[:2]))
    return (f"{os.cpu_count()} CPUs {model}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, " + ", ".join(versions))


def build_gateways(args: argparse.Namespace, up: Upstream, tmp: Path, notes: list[str]) -> list[Gateway]:
    cpus = args.gateway_cpus
    gateways = [upstream_gateway(up), raw_gateway(up, tmp, cpus)]
    reason = relaystack_unavailable()
    if reason is None:
        gateways.append(relaystack_gateway("relaystack-store", "relaystack-store.yaml", up, tmp, cpus))
        gateways.append(relaystack_gateway("relaystack-nostore", "relaystack-nostore.yaml", up, tmp, cpus))
        # opt-in (--gateways): the gateway layer's cost, all of it off vs. all of it on
        wanted = set(args.gateways.split(",")) if args.gateways else set()
        if "relaystack-off" in wanted:
            gateways.append(relaystack_gateway("relaystack-off", "relaystack-off.yaml", up, tmp, cpus))
        if "relaystack-gateway" in wanted:
            gateways.append(relaystack_gateway("relaystack-gateway", "relaystack-gateway.yaml", up, tmp, cpus,
                                               admin_key="bench-admin-key-" + "0" * 24))
    else:
        notes.append(f"relaystack skipped: {reason}")
    if not args.no_peers and not args.smoke:
        gateways += peer_gateways(up, tmp, cpus)
    if args.gateways:
        wanted = set(args.gateways.split(","))
        gateways = [g for g in gateways if g.name in wanted or g.name in ("raw", "upstream")]
    return gateways


def start_all(gateways: list[Gateway], result: dict[str, Any]) -> list[Gateway]:
    started = []
    for gateway in gateways:
        try:
            gateway.start()
        except RuntimeError as exc:
            log(f"{gateway.name}: FAILED to start: {exc}")
            result["start_failures"][gateway.name] = str(exc)
            gateway.stop()
            continue
        started.append(gateway)
        if gateway.proc is not None:
            rss = (gateway.idle_rss or 0) / 2**20
            result["startup"][gateway.name] = {"ready_s": gateway.ready_s, "idle_rss_mb": rss}
            log(f"{gateway.name}: ready in {gateway.ready_s:.2f} s, idle RSS {rss:.0f} MB, "
                f"pid {gateway.proc.pid}")
    return started


def run_checks(gateways: list[Gateway], scenarios: list[str], result: dict[str, Any]) -> bool:
    all_ok = True
    for gateway in gateways:
        problems = {s: check(gateway.url(s), s, gateway.model_for(s)) for s in scenarios if serves(gateway.name, s)}
        result["checks"][gateway.name] = problems
        bad = {s: p for s, p in problems.items() if p}
        all_ok &= not bad
        log(f"check {gateway.name:<18} " + ("all scenarios correct" if not bad else f"PROBLEMS: {bad}"))
    return all_ok


def run_scaling(args: argparse.Namespace, up: Upstream, tmp: Path, result: dict[str, Any],
                body_dir: Path, tool: str) -> None:
    if relaystack_unavailable():
        result["meta"]["notes"].append("scaling skipped: relaystack unavailable")
        return
    many = (os.cpu_count() or 1) >= 4
    cpus, load_cpus = ("0,1", "2,3") if many else ("0,1", None)
    method = (f"Gateway on CPUs {cpus}, wrk + nginx on {load_cpus}." if many else
              "Gateway on CPUs 0,1; this machine has only 2 CPUs, so wrk, nginx and the harness share "
              "them (unpinned): the 2-worker gateway cannot get two whole cores, and the ratio understates "
              "scaling. Read it with 'cores used' and CPU/req: equal CPU/req at twice the cores used is "
              "linear scaling.")
    one = relaystack_gateway("relaystack-1w", "relaystack-store.yaml", up, tmp, cpus, workers=1)
    two = relaystack_gateway("relaystack-2w", "relaystack-store.yaml", up, tmp, cpus, workers=2)
    pair = start_all([one, two], result)
    try:
        if len(pair) == 2:
            scenarios = ["chat", "sse500"]
            cells = extras.scaling(one, two, up, rounds=max(1, args.rounds), duration=args.duration,
                                   warmup=args.warmup, load_cpus=load_cpus, tool=tool, body_dir=body_dir,
                                   scenarios=scenarios, conc=64, log=log)
            result["scaling"] = cells
            rows = report.aggregate(cells)
            ratios = {}
            for s in scenarios:
                r1 = next(r for r in rows if r["scenario"] == s and r["gateway"] == one.name)
                r2 = next(r for r in rows if r["scenario"] == s and r["gateway"] == two.name)
                ratios[s] = r2["rps"] / r1["rps"] if r1["rps"] else 0.0
            result["scaling_summary"] = {"cpus": cpus, "method": method, "ratios": ratios,
                                         "scenarios": scenarios}
    finally:
        for g in pair:
            g.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so the finally blocks stop what was started


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse_args(argv)
    if args.report:
        return rerender(Path(args.report), readme=not args.no_readme)
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.conc = 1, 1.0, 0.0, "4"
    scenarios = [s for s in args.only.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS) - set(ROUTED_SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS + ROUTED_SCENARIOS}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out)
    tmp = out / "tmp" / stamp
    body_dir = tmp / "requests"
    pin_self(args.load_cpus)
    tool = args.tool if args.tool != "auto" else ("wrk" if have_wrk() else "python")
    notes: list[str] = []
    if tool == "python":
        notes.append("load from the Python aiohttp loop (wrk not installed): numbers are not comparable "
                     "with wrk's, and the loop may be the bottleneck")
    up = start_upstream(tmp, args.load_cpus, prefer_nginx=not args.python_upstream)
    if up.kind == "python":
        notes.append("upstream is the Python fake (nginx not installed or not wanted): it may be the "
                     "bottleneck for the fast gateways")
    mode = "smoke" if args.smoke else "full"
    result: dict[str, Any] = {
        "meta": {"started": stamp, "mode": mode, "rounds": args.rounds, "duration": args.duration,
                 "warmup": args.warmup, "gateway_cpus": args.gateway_cpus, "load_cpus": args.load_cpus,
                 "upstream": up.kind, "tool": tool, "machine": machine(), "scenarios": scenarios,
                 "concs": [int(c) for c in args.conc.split(",")], "notes": notes, "gateways": []},
        "checks": {}, "startup": {}, "start_failures": {}, "cells": [],
    }
    log(f"bench {mode}: upstream {up.kind} at {up.base}, load {tool}, results in {out}")
    gateways: list[Gateway] = []
    try:
        gateways = start_all(build_gateways(args, up, tmp, notes), result)
        result["meta"]["gateways"] = [g.name for g in gateways]
        ok = run_checks(gateways, scenarios, result) and not result["start_failures"]
        result["ttfb"] = extras.ttfb_checks(gateways, log)
        if not args.no_matrix:
            # smoke: every scenario is checked above; a short load runs on two JSON scenarios and a stream
            loaded = [s for s in scenarios if s in SMOKE_LOAD] if args.smoke else scenarios
            result["cells"] = run_matrix(
                gateways, up, scenarios=loaded, concs=result["meta"]["concs"], rounds=args.rounds,
                duration=args.duration, warmup=args.warmup, load_cpus=args.load_cpus, tool=tool,
                body_dir=body_dir, log=log)
            if args.check:
                ok &= run_check(gateways, up, loaded, result, args, tool, body_dir)
        load_errors = sum(c["errors"] + c["non2xx"] for c in result["cells"])
        ok &= load_errors == 0 and all(t["relayed_at_once"] and not t["problems"] for t in result["ttfb"].values())
        if args.soak:
            target = next((g for g in gateways if g.name == "relaystack-store"), None)
            if target is None:
                notes.append("soak skipped: relaystack unavailable")
            else:
                result["soak"] = extras.soak(target, total=args.soak_requests, first_mark=args.soak_mark,
                                             conc=16, body_dir=body_dir, log=log)
        if args.scaling:
            run_scaling(args, up, tmp, result, body_dir, tool)
    finally:
        for gateway in gateways:
            gateway.stop()
        up.stop()
    result["rows"] = report.aggregate(result["cells"])
    result["targets"] = report.targets(result)
    result["ok"] = ok
    write_outputs(args, out, stamp, result)
    for t in result["targets"]:
        verdict = {True: "pass", False: "FAIL", None: "n/a"}[t["ok"]]
        value = "-" if t["value"] is None else f"{t['value']:.3g}"
        log(f"target {t['target']}: {value} (goal {t['goal']}): {verdict}")
    log("smoke: " + ("every scenario answered correctly" if ok else "FAILED") if args.smoke else "done")
    if args.check:
        log("check: " + ("every scenario at or above its floor" if result.get("check_ok") else "FAILED"))
    return 0 if ok or not (args.smoke or args.check) else 1


def run_check(gateways: list[Gateway], up: Upstream, scenarios: list[str], result: dict[str, Any],
              args: argparse.Namespace, tool: str, body_dir: Path) -> bool:
    """The floors of harness/floors.py; a scenario below its floor is measured once more."""
    conc = floors.check_conc(result["meta"]["concs"])
    floored = [s for s in scenarios if s in floors.FLOORS]
    results = floors.evaluate(result["cells"], floored, conc)
    again = floors.failing(results)
    pair = [g for g in gateways if g.name in ("raw", floors.GATEWAY)]
    if again and len(pair) == 2:
        log(f"check: {', '.join(again)} below the floor; measuring once more")
        extra = max((c.get("round", 1) for c in result["cells"]), default=0) + 1
        for scenario in again:
            for gateway in pair:
                cell = run_cell(gateway, up, scenario, conc, duration=args.duration, warmup=max(args.warmup, 0.5),
                                load_cpus=args.load_cpus, tool=tool, body_dir=body_dir)
                cell["round"] = extra
                result["cells"].append(cell)
        results = floors.evaluate(result["cells"], floored, conc)
    for item in results:
        log(floors.describe(item))
    result["check"] = results
    result["check_ok"] = bool(results) and not floors.failing(results)
    return bool(result["check_ok"])


def rerender(path: Path, *, readme: bool) -> int:
    result = json.loads(path.read_text())
    result["rows"] = report.aggregate(result["cells"])
    result["targets"] = report.targets(result)
    path.with_suffix(".md").write_text(report.render(result))
    png = report.plot(result, path.with_suffix(".png")) if result["cells"] else None
    log(f"re-rendered {path.with_suffix('.md')}" + (f" and {png}" if png else ""))
    if readme and result["meta"]["mode"] != "smoke" and result["cells"]:
        report.update_readme(BENCH / "README.md", result, path.with_suffix(".md").name)
        log("updated the Latest results section of bench/README.md")
        publish_plot(png)
    return 0


def publish_plot(png: Path | None) -> None:
    """The plot README shows (bench/latest-results.png) is the one this run drew."""
    if png is not None:
        shutil.copyfile(png, BENCH / "latest-results.png")
        log("copied the plot to bench/latest-results.png")
    else:
        log("no plot drawn (pip install matplotlib): bench/latest-results.png is an earlier run's")


def write_outputs(args: argparse.Namespace, out: Path, stamp: str, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-smoke" if args.smoke else ""
    json_path = out / f"{stamp}{suffix}.json"
    json_path.write_text(json.dumps(result, indent=1, default=str))
    md_path = out / f"{stamp}{suffix}.md"
    md_path.write_text(report.render(result))
    (out / "report.md").write_text(report.render(result))
    png = None if args.smoke else report.plot(result, out / f"{stamp}.png")
    log(f"wrote {json_path}, {md_path}, {out / 'report.md'}" + (f", {png}" if png else ""))
    regenerate = not args.smoke and not args.no_readme and result["cells"]
    if regenerate and report.update_readme(BENCH / "README.md", result, md_path.name):
        log("updated the Latest results section of bench/README.md")
        publish_plot(png)


if __name__ == "__main__":
    sys.exit(main())
