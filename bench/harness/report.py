"""Turn the cells of a run into medians, spreads, ratios, target checks, report.md and a PNG."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.frontend_checks import FRONTENDS

Key = tuple[str, int, str]  # scenario, conc, gateway
STORE_ON = "relaystack-store"
# the goals: raw CPU/req over relaystack's (store on, c=16, same run) at least this; chat1k, chat4k and
# embed32 (realistic bodies) are held to the chat and embeddings goals
CPU_TARGETS = {"chat": 0.77, "chat1k": 0.77, "chat4k": 0.77, "embed": 0.77, "embed32": 0.77, "sse500": 0.6,
               # the front-ends translate every event, so their floor is lower
               **dict.fromkeys(FRONTENDS, 0.4)}
# At c=16 the gateway's one core is saturated, so a request's latency grows with its CPU cost: a
# front-end at 0.4x raw by CPU is already ~2.5x raw at p50. Its tail is held to 2x what its cost
# predicts (p99 x raw times CPU x raw); the byte relays' tails to 2x raw.
COST_SCALED_P99 = frozenset(FRONTENDS)


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(cells: list[dict[str, Any]], gateway: str, scenario: str, conc: int, field: str,
           base: str) -> float | None:
    """Median over rounds of gateway[field] / base[field] measured in the same round."""
    by_round: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for c in cells:
        if c["scenario"] == scenario and c["conc"] == conc:
            by_round[c.get("round", 1)][c["gateway"]] = c
    ratios = [r[gateway][field] / r[base][field] for r in by_round.values()
              if gateway in r and base in r and r[base].get(field) and r[gateway].get(field) is not None]
    return _median(ratios)


def _across_scenarios(cells: list[dict[str, Any]], gateway: str, scenario: str, base: str, conc: int,
                      field: str) -> float | None:
    """Median over rounds of one gateway's scenario[field] / base[field] (same round)."""
    by_round: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for c in cells:
        if c["gateway"] == gateway and c["conc"] == conc and c["scenario"] in (scenario, base):
            by_round[c.get("round", 1)][c["scenario"]] = c
    ratios = [r[scenario][field] / r[base][field] for r in by_round.values()
              if scenario in r and base in r and r[base].get(field) and r[scenario].get(field) is not None]
    return _median(ratios)


def _cpu_ratio(cells: list[dict[str, Any]], gateway: str, scenario: str, conc: int) -> float | None:
    """Capacity on a dedicated core relative to raw: raw's CPU/req over the gateway's (same round)."""
    return _ratio(cells, "raw", scenario, conc, "cpu_per_req_us", gateway)


def aggregate(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for c in cells:
        groups[(c["scenario"], c["conc"], c["gateway"])].append(c)
    rows = []
    for (scenario, conc, gateway), group in groups.items():
        rps = [c["rps"] for c in group]
        rss = [c["rss_peak_mb"] for c in group if "rss_peak_mb" in c]
        rows.append({
            "scenario": scenario, "conc": conc, "gateway": gateway, "rounds": len(group),
            "rps": _median(rps), "rps_min": min(rps), "rps_max": max(rps),
            "x_raw": _ratio(cells, gateway, scenario, conc, "rps", "raw"),
            "x_up": _ratio(cells, gateway, scenario, conc, "rps", "upstream"),
            "cpu_x_raw": _cpu_ratio(cells, gateway, scenario, conc),
            "p50_ms": _median([c["p50_ms"] for c in group]), "p99_ms": _median([c["p99_ms"] for c in group]),
            "p99_x_raw": _ratio(cells, gateway, scenario, conc, "p99_ms", "raw"),
            "cpu_per_req_us": _median([c.get("cpu_per_req_us") for c in group]),
            "core_pct": _median([c.get("core_pct") for c in group]),
            "rss_mb": max(rss) if rss else None,
            "up_conn_per_req": _median([c.get("up_conn_per_req") for c in group]),
            "errors": sum(c["errors"] + c["non2xx"] for c in group),
        })
    return rows


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return format(value, ",.0f") if value >= 100 else format(value, ".3g")


def scenario_table(rows: list[dict[str, Any]], scenario: str, order: list[str]) -> list[str]:
    lines = ["| gateway | conc | req/s (min..max) | x raw | x up | p50 ms | p99 ms | p99 x raw | "
             "CPU/req µs | x raw by CPU | core % | RSS MB | up conn/req | err |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    picked = sorted((r for r in rows if r["scenario"] == scenario),
                    key=lambda r: (r["conc"], order.index(r["gateway"]) if r["gateway"] in order else 99))
    for r in picked:
        lines.append(
            f"| {r['gateway']} | {r['conc']} | {_num(r['rps'])} ({_num(r['rps_min'])}..{_num(r['rps_max'])}) | "
            f"{_fmt(r['x_raw'], '.3g')} | {_fmt(r['x_up'], '.3g')} | {_fmt(r['p50_ms'], '.2f')} | "
            f"{_fmt(r['p99_ms'], '.2f')} | {_fmt(r['p99_x_raw'], '.2f')} | {_fmt(r['cpu_per_req_us'])} | "
            f"{_fmt(r.get('cpu_x_raw'), '.3g')} | "
            f"{_fmt(r['core_pct'])} | {_fmt(r['rss_mb'])} | {_fmt(r['up_conn_per_req'], '.2f')} | {r['errors']} |")
    return lines


def _row(rows: list[dict[str, Any]], scenario: str, conc: int, gateway: str) -> dict[str, Any] | None:
    return next((r for r in rows if (r["scenario"], r["conc"], r["gateway"]) == (scenario, conc, gateway)), None)


def _tail_target(row: dict[str, Any]) -> tuple[str, float, str, bool] | None:
    """A relaystack row's p99 target at c=16: name, value, goal, verdict (``COST_SCALED_P99``)."""
    if row["conc"] != 16 or not row["gateway"].startswith("relaystack") or row["p99_x_raw"] is None:
        return None
    name = f"{row['scenario']} c=16 {row['gateway']}: p99 x raw"
    if row["scenario"] not in COST_SCALED_P99:
        return name, row["p99_x_raw"], "<= 2", row["p99_x_raw"] <= 2
    if row.get("cpu_x_raw") is None:
        return None
    scaled = row["p99_x_raw"] * row["cpu_x_raw"]
    return f"{name}, per its CPU x raw (p99 x raw × CPU ratio)", scaled, "<= 2", scaled <= 2


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets this run measured: name, measured value, goal, verdict."""
    rows, out = result.get("rows", []), []

    def add(name: str, value: float | None, goal: str, ok: bool | None) -> None:
        out.append({"target": name, "value": value, "goal": goal, "ok": ok})

    for scenario, goal in CPU_TARGETS.items():
        row = _row(rows, scenario, 16, STORE_ON)
        if row and row.get("cpu_x_raw") is not None:
            add(f"{scenario} c=16 store on: raw CPU/req ÷ relaystack's (same run)", row["cpu_x_raw"],
                f">= {goal}", row["cpu_x_raw"] >= goal)
    for row in rows:
        tail = _tail_target(row)
        if tail is not None:
            add(*tail)
    cells = result.get("cells", [])
    for scenario, floor, what in (("chat2", 0.95, "both up"), ("chat2down", 0.8, "the first refusing connections")):
        for gateway in (STORE_ON, "relaystack-nostore"):
            ratio = _across_scenarios(cells, gateway, scenario, "chat", 16, "rps")
            if ratio is not None:
                add(f"{scenario} c=16 {gateway}, two deployments ({what}): req/s x chat (one)", ratio,
                    f">= {floor}", ratio >= floor)
            by_cpu = _across_scenarios(cells, gateway, "chat", scenario, 16, "cpu_per_req_us")
            if by_cpu is not None:
                add(f"{scenario} c=16 {gateway}: x chat by CPU/req (dedicated-core estimate)", by_cpu,
                    f">= {floor}", by_cpu >= floor)
    ttfb = result.get("ttfb", {}).get(STORE_ON)
    if ttfb:
        first = ttfb["first_event_s"]
        add("stream: first event through relaystack (ms; upstream stalls 1 s after it)",
            None if first is None else first * 1e3, "< 500", ttfb["relayed_at_once"])
    if soak := result.get("soak"):
        add(f"RSS after {soak['first_mark']:,} requests (MB)", soak["rss_at_first_mark_mb"], "< 100",
            None if soak["rss_at_first_mark_mb"] is None else soak["rss_at_first_mark_mb"] < 100)
        add(f"RSS after {soak['total']:,} requests (MB)", soak["rss_at_end_mb"], "< 100",
            None if soak["rss_at_end_mb"] is None else soak["rss_at_end_mb"] < 100)
        growth = soak["growth_mb"]
        add(f"RSS growth {soak['first_mark']:,} -> {soak['total']:,} requests (MB)", growth,
            "~0 (<= 5 MB noise)", None if growth is None else growth <= 5)
    if scale := result.get("scaling_summary"):
        for scenario, ratio in scale["ratios"].items():
            add(f"{scenario}: --workers 2 req/s x 1 worker ({scale['cpus']})", ratio, ">= 1.7", ratio >= 1.7)
    return out


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    order = meta["gateways"]
    lines = [f"# relaystack bench: {meta['started']}", "",
             f"Mode: {meta['mode']}. Rounds: {meta['rounds']}, {meta['duration']} s per cell after "
             f"{meta['warmup']} s warm-up. Gateway CPUs {meta['gateway_cpus']}, load + upstream CPUs "
             f"{meta['load_cpus']}. Upstream: {meta['upstream']}. Load: {meta['tool']}. "
             f"Machine: {meta['machine']}.", ""]
    lines += [f"Note: {n}" for n in meta.get("notes", [])] + [""]
    if tlist := result.get("targets"):
        lines += ["## Targets", "", "| target | measured | goal | verdict |", "|---|---:|---|---|"]
        for t in tlist:
            verdict = {True: "pass", False: "**FAIL**", None: "n/a"}[t["ok"]]
            lines.append(f"| {t['target']} | {_fmt(t['value'], '.3g')} | {t['goal']} | {verdict} |")
        lines.append("")
    if checked := result.get("check"):
        lines += ["## Check (`--check`: raw CPU/req ÷ relaystack's, store on, each round; floors in harness/floors.py)",
                  "", "| scenario | conc | per round | floor | verdict |", "|---|---:|---|---:|---|"]
        lines += [f"| {c['scenario']} | {c['conc']} | {', '.join(f'{r:.3f}' for r in c['ratios']) or '-'} | "
                  f"{c['floor']} | {'ok' if c['ok'] else '**below the floor**'} |" for c in checked]
        lines.append("")
    lines += ["## Correctness", ""]
    for name, problems in result.get("checks", {}).items():
        bad = {s: p for s, p in problems.items() if p}
        lines.append(f"- {name}: " + ("all scenarios correct" if not bad else f"PROBLEMS {bad}"))
    lines.append("")
    for scenario in meta["scenarios"]:
        if any(r["scenario"] == scenario for r in result.get("rows", [])):
            lines += [f"## {scenario}", "", *scenario_table(result["rows"], scenario, order), ""]
    if result.get("startup"):
        lines += ["## Start-up", "", "| gateway | ready s | idle RSS MB |", "|---|---:|---:|"]
        lines += [f"| {g} | {_fmt(v['ready_s'], '.2f')} | {_fmt(v['idle_rss_mb'], '.0f')} |"
                  for g, v in result["startup"].items()]
        lines.append("")
    if soak := result.get("soak"):
        lines += ["## Memory soak", "", f"{soak['gateway']}, mix {soak['mix']}, c={soak['conc']}, "
                  f"{soak['rps']:,.0f} req/s (Python load loop), errors {soak['errors'] + soak['non2xx']}.", "",
                  "| requests | RSS MB |", "|---:|---:|"]
        lines += [f"| {s['requests']:,} | {s['rss_mb']:.1f} |" for s in soak["samples"]]
        lines.append("")
    if scale := result.get("scaling_summary"):
        lines += ["## Worker scaling", "", scale["method"], ""]
        scaled = aggregate(result["scaling"])
        for scenario in scale["scenarios"]:
            lines += [f"**{scenario}**", "", *scenario_table(scaled, scenario, order), ""]
    lines += [COLUMNS]
    return "\n".join(lines) + "\n"


COLUMNS = """## Columns

- req/s: completed requests (for streams: whole streams) per second, median over rounds (min..max).
- x raw / x up: req/s divided by the raw pass-through's / the upstream's, in the same round; median of
  those per-round ratios. p99 x raw likewise for p99 latency (lower is better).
- p50 / p99 ms: wrk's latency from writing the request to the end of the response (full stream).
- CPU/req µs: the gateway's CPU time (user + system, whole process tree) per request. Does not depend
  on other load on the machine, unlike req/s.
- x raw by CPU: raw's CPU/req over the gateway's, same round: the req/s ratio the two would have if
  each had a whole core to itself (robust on a shared machine, where req/s ratios move).
- core %: the gateway's CPU use during the cell as a share of one core; < 100 for a CPU-bound gateway
  means something else took part of its CPU.
- RSS MB: peak resident memory of the gateway's process tree during the cell (max over rounds).
- up conn/req: new TCP connections the fake upstream accepted per client request (0 = pooled).
- err: socket errors, timeouts and non-2xx responses, summed over rounds.
"""


_PANELS = (("rps", "req/s"), ("p99_ms", "p99 ms"), ("cpu_per_req_us", "CPU µs per request"))
_COLUMNS = 5


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """Per scenario, bars per gateway and concurrency: req/s, p99 and CPU per request (log scales),
    five scenarios to a row of panels."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows, meta = result.get("rows", []), result["meta"]
    scenarios = [s for s in meta["scenarios"] if any(r["scenario"] == s for r in rows)]
    if not scenarios:
        return None
    gateways = [g for g in meta["gateways"] if any(r["gateway"] == g for r in rows)]
    groups = [scenarios[i:i + _COLUMNS] for i in range(0, len(scenarios), _COLUMNS)]
    columns = min(_COLUMNS, len(scenarios))
    fig, axes = plt.subplots(len(_PANELS) * len(groups), columns, figsize=(3.8 * columns, 2.9 * len(_PANELS) *
                                                                           len(groups)), squeeze=False)
    width = 0.8 / max(1, len(gateways))
    for group_i, group in enumerate(groups):
        for col in range(columns):
            for panel_i, (field, label) in enumerate(_PANELS):
                ax = axes[group_i * len(_PANELS) + panel_i][col]
                if col >= len(group):
                    ax.axis("off")
                    continue
                _bars(ax, rows, group[col], gateways, field, width)
                ax.set_title(f"{group[col]}: {label}", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(gateways), fontsize=10)
    fig.suptitle(f"relaystack bench {meta['started']} (log scales; gateway on CPU {meta['gateway_cpus']})")
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _bars(ax: Any, rows: list[dict[str, Any]], scenario: str, gateways: list[str], field: str,
          width: float) -> None:
    concs = sorted({r["conc"] for r in rows if r["scenario"] == scenario})
    for g_i, gateway in enumerate(gateways):
        vals = [(_row(rows, scenario, c, gateway) or {}).get(field) or 0 for c in concs]
        ax.bar([i + g_i * width for i in range(len(concs))], vals, width, label=gateway)
    ax.set_xticks([i + width * (len(gateways) - 1) / 2 for i in range(len(concs))])
    ax.set_xticklabels([f"c={c}" for c in concs])
    ax.set_yscale("log")
    ax.grid(axis="y", which="both", alpha=0.3)


START, END = "<!-- latest-results:start -->", "<!-- latest-results:end -->"


def update_readme(readme: Path, result: dict[str, Any], report_name: str) -> bool:
    text = readme.read_text() if readme.exists() else ""
    if START not in text or END not in text:
        return False
    meta = result["meta"]
    body = [START, "", f"Run {meta['started']} ({meta['mode']}, {meta['rounds']} rounds x {meta['duration']} s, "
            f"{meta['machine']}); full report: `bench/results/{report_name}`.", ""]
    if tlist := result.get("targets"):
        body += ["| target | measured | goal | verdict |", "|---|---:|---|---|"]
        body += [f"| {t['target']} | {_fmt(t['value'], '.3g')} | {t['goal']} | "
                 f"{ {True: 'pass', False: 'FAIL', None: 'n/a'}[t['ok']] } |" for t in tlist]
        body.append("")
    for scenario in meta["scenarios"]:
        picked = [r for r in result.get("rows", []) if r["scenario"] == scenario and r["conc"] == 16]
        if picked:
            body += [f"**{scenario}, c=16**", "", *scenario_table(picked, scenario, meta["gateways"]), ""]
    body.append(END)
    head, rest = text.split(START, 1)
    readme.write_text(head + "\n".join(body) + rest.split(END, 1)[1])
    return True
