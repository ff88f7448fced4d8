#!/usr/bin/env python3
"""Scale-out numbers: the PostgreSQL store against SQLite, and three instances behind nginx.

    .venv/bin/python bench/scaleout.py                         # 3 rounds x 3 s, chat at c=16
    .venv/bin/python bench/scaleout.py --rounds 5 --duration 5 --no-cluster --no-gateway

Part 1, store: ``relaystack-store`` (SQLite) and ``relaystack-pg`` (PostgreSQL store, a
throw-away database, with Redis as every PostgreSQL deployment runs) on CPU 0, load on CPU 1,
interleaved rounds; the ratio of req/s is taken within each round, then the median. CPU per
request is the gateway's process tree; the PostgreSQL and Redis servers' CPU (every ``postgres``
/ ``redis-server`` process, so other users of a shared server add noise) is reported beside it.
With the gateway on (default; ``--no-gateway`` skips it), the same for ``relaystack-gateway``
(server.auth, every request with a virtual key with limits and a budget: SQLite keys and usage,
in-process limits) and ``relaystack-gateway-pg`` (keys and usage in PostgreSQL, limits on Redis:
one script call to admit and one to settle per request).

Part 2, cluster: ``scripts/cluster`` starts 3 instances behind nginx (PostgreSQL store, Redis
state), unpinned: on a 2-CPU machine the instances, nginx, PostgreSQL and the load generator
share both cores, so req/s says little; CPU per request per component says what more cores give.
The same load is run against one PostgreSQL-store instance unpinned, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.gateways import Gateway, relaystack_command, relaystack_gateway
from harness.load import Target, have_wrk, run_load
from harness.matrix import run_cell, wait_idle
from harness.procs import Proc, free_port
from harness.scenarios import request_body
from harness.upstream import start_upstream

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ADMIN_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def log(message: str) -> None:
    print(message, flush=True)


def postgres_cpu() -> float:
    return server_cpu(("postgres", "postmaster"))


def redis_cpu() -> float:
    return server_cpu(("redis-server",))


def server_cpu(names: tuple[str, ...]) -> float:
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in names:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    return total


def tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


async def admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_config(tmp: Path, source: str = "relaystack-store.yaml") -> Path:
    """bench/configs/<source> with the PostgreSQL store."""
    text = (BENCH / "configs" / source).read_text()
    text = text.replace('storage: {inference_store: true, dir: "${env.BENCH_STORE_DIR}"}',
                        'storage: {inference_store: true, backend: postgres, dsn: "${env.RELAYSTACK_POSTGRES_DSN}"}')
    assert "backend: postgres" in text, f"{source} changed: update bench/scaleout.py"
    path = tmp / source.replace("relaystack-", "relaystack-pg-")
    path.write_text(text)
    return path


# (name, its config): a name ending in -pg runs on PostgreSQL + Redis; "gateway" ones with server.auth
PAIRS = [("relaystack-store", "relaystack-store.yaml"), ("relaystack-pg", "relaystack-store.yaml")]
GATEWAY_PAIRS = [("relaystack-gateway", "relaystack-gateway.yaml"),
                 ("relaystack-gateway-pg", "relaystack-gateway.yaml")]


def shared_env(dsn: str, prefix: str) -> dict[str, str]:
    """What a PostgreSQL instance gets: the DSN, Redis, and the key secret every instance shares."""
    return {"RELAYSTACK_POSTGRES_DSN": dsn, "RELAYSTACK_REDIS_URL": REDIS_URL, "RELAYSTACK_REDIS_PREFIX": prefix,
            "RELAYSTACK_KEY_SECRET": "bench-key-secret-" + prefix}


def store_part(args: argparse.Namespace, up: Any, tmp: Path, dsn: str, tool: str) -> dict[str, Any]:
    prefix = f"relaystack-bench-{secrets.token_hex(4)}:"
    gateways = []
    for name, source in PAIRS + (GATEWAY_PAIRS if args.gateway else []):
        on_pg = name.endswith("-pg")
        admin_key = ("bench-admin-" + secrets.token_hex(16)) if "gateway" in name else None
        config = str(pg_config(tmp, source)) if on_pg else source
        gateways.append(relaystack_gateway(name, config, up, tmp, "0", admin_key=admin_key,
                                           env=shared_env(dsn, prefix) if on_pg else None).start())
    rows: list[dict[str, Any]] = []
    try:
        for rnd in range(args.rounds):
            cells = {}
            for gateway in gateways if rnd % 2 == 0 else gateways[::-1]:
                if gateway.token:
                    os.environ["BENCH_TOKEN"] = gateway.token
                pg0, redis0 = postgres_cpu(), redis_cpu()
                cell = run_cell(gateway, up, "chat", args.conc, duration=args.duration, warmup=1.0,
                                load_cpus="1", tool=tool, body_dir=tmp / "bodies")
                cell["pg_cpu_per_req_us"] = (postgres_cpu() - pg0) / max(1, cell["requests"]) * 1e6
                cell["redis_cpu_per_req_us"] = (redis_cpu() - redis0) / max(1, cell["requests"]) * 1e6
                cells[gateway.name] = cell
                log(f"  round {rnd + 1} {gateway.name:22} {cell['rps']:8.0f} req/s  "
                    f"p99 {cell['p99_ms']:6.1f} ms  gateway {cell['cpu_per_req_us']:6.0f} us/req  "
                    f"postgres {cell['pg_cpu_per_req_us']:5.0f}  redis {cell['redis_cpu_per_req_us']:4.0f} us/req  "
                    f"errors {cell['errors'] + cell['non2xx']}")
            rows.append(cells)
    finally:
        for gateway in gateways:
            gateway.stop()
        forget_redis_prefix(prefix)
    out: dict[str, Any] = {"rounds": rows}
    for sqlite, pg in [("relaystack-store", "relaystack-pg")] + (
            [("relaystack-gateway", "relaystack-gateway-pg")] if args.gateway else []):
        ratios = [r[pg]["rps"] / r[sqlite]["rps"] for r in rows]
        cpu_ratios = [r[pg]["cpu_per_req_us"] / r[sqlite]["cpu_per_req_us"] for r in rows]
        out[pg] = {"rps_ratio_median": statistics.median(ratios), "rps_ratios": ratios,
                   "cpu_ratio_median": statistics.median(cpu_ratios), "cpu_ratios": cpu_ratios,
                   "cpu_us_median": statistics.median(r[pg]["cpu_per_req_us"] for r in rows),
                   "sqlite_cpu_us_median": statistics.median(r[sqlite]["cpu_per_req_us"] for r in rows)}
    return out


def forget_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def cluster_part(args: argparse.Namespace, up: Any, tmp: Path, dsn: str, tool: str) -> dict[str, Any]:
    prefix = f"relaystack-bench-{secrets.token_hex(4)}:"
    env = {**os.environ, "RELAYSTACK_POSTGRES_DSN": dsn, "RELAYSTACK_REDIS_URL": REDIS_URL,
           "RELAYSTACK_REDIS_PREFIX": prefix, "BENCH_UPSTREAM": up.base}
    directory = tmp / "cluster"
    port = free_port()
    cluster = [sys.executable, str(ROOT / "scripts" / "cluster.py")]
    started = subprocess.run([*cluster, "start", str(pg_config(tmp)), "--instances", "3", "--port", str(port),
                              "--dir", str(directory)], env=env, capture_output=True, text=True, check=False)
    if started.returncode != 0:
        raise RuntimeError(f"scripts/cluster start failed:\n{started.stdout}{started.stderr}")
    single_port = free_port()
    single = Proc("relaystack-pg-1", [*relaystack_command(), "run", str(pg_config(tmp)), "--port", str(single_port)],
                  cpus=None, log=tmp / "logs" / "single.log",
                  env={"BENCH_UPSTREAM": up.base, **shared_env(dsn, prefix)})
    single.start().wait_http(f"http://127.0.0.1:{single_port}/v1/models", timeout=90)
    try:
        state = json.loads((directory / "cluster.json").read_text())
        instance_pids = [i["pid"] for i in state["instances"]]
        body_file = tmp / "bodies" / "cluster-chat.json"
        body_file.parent.mkdir(parents=True, exist_ok=True)
        body = request_body("chat", None)
        assert body is not None
        body_file.write_bytes(body)
        targets = {
            "cluster-3": (Target(f"http://127.0.0.1:{port}/v1/chat/completions", "POST", body, body_file),
                          instance_pids, state["nginx_pid"]),
            "single-1": (Target(f"http://127.0.0.1:{single_port}/v1/chat/completions", "POST", body, body_file),
                         [single.pid], None),
        }
        rows: list[dict[str, Any]] = []
        for rnd in range(args.rounds):
            for name in (list(targets) if rnd % 2 == 0 else list(targets)[::-1]):
                target, pids, nginx_pid = targets[name]
                run_load(target, args.cluster_conc, 1.0, None, tool)
                c0, n0, p0 = tree_cpu(pids), tree_cpu([nginx_pid]) if nginx_pid else 0.0, postgres_cpu()
                result = run_load(target, args.cluster_conc, args.duration, None, tool)
                c1, n1, p1 = tree_cpu(pids), tree_cpu([nginx_pid]) if nginx_pid else 0.0, postgres_cpu()
                requests = max(1, result["requests"])
                row = {"name": name, "round": rnd + 1, "rps": result["rps"], "p99_ms": result["p99_ms"],
                       "errors": result["errors"] + result["non2xx"],
                       "gateway_us": (c1 - c0) / requests * 1e6, "nginx_us": (n1 - n0) / requests * 1e6,
                       "postgres_us": (p1 - p0) / requests * 1e6,
                       "gateway_cores": (c1 - c0) / result["duration_s"]}
                rows.append(row)
                log(f"  round {rnd + 1} {name:10} {row['rps']:8.0f} req/s  p99 {row['p99_ms']:6.1f} ms  "
                    f"relaystack {row['gateway_us']:5.0f} us/req ({row['gateway_cores']:.2f} cores)  "
                    f"nginx {row['nginx_us']:4.0f}  postgres {row['postgres_us']:4.0f} us/req  errors {row['errors']}")
                time.sleep(0.5)
    finally:
        single.stop()
        subprocess.run([*cluster, "stop", "--dir", str(directory)], env=env, capture_output=True, check=False)
        forget_redis_prefix(prefix)
    return {"rows": rows}


def summarize_cluster(rows: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("cluster-3", "single-1"):
        mine = [r for r in rows if r["name"] == name]
        for key in ("rps", "gateway_us", "nginx_us", "postgres_us"):
            out[f"{name}.{key}"] = statistics.median(r[key] for r in mine)
    gateway, nginx, pg = out["cluster-3.gateway_us"], out["cluster-3.nginx_us"], out["cluster-3.postgres_us"]
    # 4 cores: 3 for the three instances, 1 for nginx + PostgreSQL (+ the load generator, not counted)
    out["projected_4core_rps"] = min(3e6 / gateway, 1e6 / (nginx + pg)) if gateway and (nginx + pg) else 0.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--conc", type=int, default=16)
    parser.add_argument("--cluster-conc", type=int, default=48, help="concurrency through nginx (16 per instance)")
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--no-gateway", dest="gateway", action="store_false",
                        help="skip the server.auth pair (keys, usage, limits: SQLite vs PostgreSQL + Redis)")
    args = parser.parse_args()
    tool = "wrk" if have_wrk() else "python"
    tmp = Path(tempfile.mkdtemp(prefix="relaystack-scaleout-"))
    database = "relaystack_bench_" + secrets.token_hex(4)
    asyncio.run(admin(f'CREATE DATABASE "{database}"'))
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + database
    up = start_upstream(tmp, "1")
    result: dict[str, Any] = {"load_avg_before": os.getloadavg()}
    try:
        log(f"store: chat c={args.conc}, {args.rounds} rounds x {args.duration:.0f} s, gateway on CPU 0 ({tool})")
        result["store"] = store_part(args, up, tmp, dsn, tool)
        for name in ("relaystack-pg", "relaystack-gateway-pg"):
            if name in result["store"]:
                got = result["store"][name]
                log(f"  {name} / SQLite req/s: median {got['rps_ratio_median']:.2f} "
                    f"(rounds {', '.join(f'{r:.2f}' for r in got['rps_ratios'])}); CPU/req ratio "
                    f"{got['cpu_ratio_median']:.2f} (rounds {', '.join(f'{r:.2f}' for r in got['cpu_ratios'])}; "
                    f"{got['cpu_us_median']:.0f} vs {got['sqlite_cpu_us_median']:.0f} us)")
        if not args.no_cluster:
            log(f"cluster: 3 instances behind nginx vs 1 instance, chat c={args.cluster_conc}, unpinned")
            result["cluster"] = cluster_part(args, up, tmp, dsn, tool)
            summary = summarize_cluster(result["cluster"]["rows"])
            result["cluster"]["summary"] = summary
            log("  medians: " + ", ".join(f"{k} {v:.0f}" for k, v in summary.items()))
    finally:
        up.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    result["load_avg_after"] = os.getloadavg()
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    path = out / f"scaleout-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    log(f"load average before {result['load_avg_before']}, after {result['load_avg_after']}; wrote {path}")


if __name__ == "__main__":
    _ = (Gateway, wait_idle)
    main()
