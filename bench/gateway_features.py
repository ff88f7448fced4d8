"""What each gateway feature costs end to end: every variant loaded at the same time.

On a shared machine, cells run one after the other move by 20 % or more with the neighbours, far
more than one feature costs. Here relaystack-off and several relaystack-gateway variants (the
bench key with or without limits, budget, ``/metrics``) run side by side on the gateway CPU and
are loaded at once (one wrk each on the load CPU), so a neighbour hits them all alike and each
one's CPU per request (from /proc) is comparable within a round. The absolute µs are inflated
by the variants sharing one core; read the differences and the ratios.

    .venv/bin/python bench/gateway_features.py                      # 6 rounds x 3 s, ~2 min
    .venv/bin/python bench/gateway_features.py --variants bare,full --rounds 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from harness.gateways import Gateway, relaystack_command  # noqa: E402
from harness.load import LUA  # noqa: E402
from harness.matrix import target_for  # noqa: E402
from harness.procs import Proc, free_port, pin_self, taskset_prefix  # noqa: E402
from harness.upstream import Upstream, start_upstream  # noqa: E402

ADMIN_KEY = "bench-admin-key-" + "0" * 24
LIMITS = {"rpm": 10**8, "tpm": 10**11, "max_concurrent": 10**4}
BUDGET = {"max_usd": 10**9, "period": "month"}
# name -> (server.metrics on, the key's limits and budget, as bench/run.py's relaystack-gateway key)
VARIANTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "bare": (False, {}),
    "metrics": (True, {}),
    "budget": (True, {"budget": BUDGET}),
    "limits": (True, {"limits": LIMITS}),
    "full": (True, {"limits": LIMITS, "budget": BUDGET}),
}


def config_for(tmp: Path, metrics: bool) -> Path:
    """relaystack-gateway.yaml, with ``/metrics`` off when asked."""
    text = (BENCH / "configs" / "relaystack-gateway.yaml").read_text()
    if not metrics:
        text = text.replace("auth: {provider_config: {type: virtual_keys}}",
                            "auth: {provider_config: {type: virtual_keys}}\n  metrics: false")
    path = tmp / f"gateway-metrics-{int(metrics)}.yaml"
    path.write_text(text)
    return path


def start(name: str, config: Path, up: Upstream, tmp: Path, cpus: str, key: dict[str, Any] | None) -> Gateway:
    port = free_port()
    env = {"BENCH_UPSTREAM": up.base, "BENCH_STORE_DIR": str(tmp / f"{name}-store")}
    if key is not None:
        env["RELAYSTACK_ADMIN_KEY"] = ADMIN_KEY
    argv = [*relaystack_command(), "run", str(config), "--port", str(port)]
    gateway = Gateway(name, f"http://127.0.0.1:{port}", admin_key=ADMIN_KEY if key is not None else None,
                      proc=Proc(name, argv, cpus=cpus, log=tmp / "logs" / f"{name}.log", env=env))
    assert gateway.proc is not None
    gateway.proc.start()
    gateway.proc.wait_http(f"{gateway.base}/v1/health", timeout=90)
    if key is not None:
        body = json.dumps({"name": "bench", **key}).encode()
        request = urllib.request.Request(f"{gateway.base}/v1/admin/keys", data=body, method="POST", headers={
            "Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            gateway.token = str(json.loads(response.read())["key"])
    return gateway


def load_together(gateways: list[Gateway], duration: int, load_cpus: str, body_dir: Path) -> dict[str, float]:
    """Each gateway's CPU µs per request, all loaded at once (chat, c=16)."""
    before = {g.name: g.proc.cpu_seconds() for g in gateways if g.proc is not None}
    running = []
    for gateway in gateways:
        target = target_for(gateway, "chat", body_dir)
        env = {**os.environ, "BENCH_METHOD": target.method, "BENCH_BODY_FILE": str(target.body_file or ""),
               "BENCH_TOKEN": gateway.token or "bench"}
        argv = [*taskset_prefix(load_cpus), "wrk", "-t1", "-c16", f"-d{duration}s", "--timeout", "10s",
                "-s", str(LUA), target.url]
        running.append((gateway, subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)))
    out: dict[str, float] = {}
    for gateway, proc in running:
        stdout = proc.communicate()[0]
        line = next(ln for ln in stdout.splitlines() if ln.startswith("BENCH_JSON "))
        summary = json.loads(line.removeprefix("BENCH_JSON "))
        if summary["status"] or summary["connect"] + summary["read"] + summary["write"] + summary["timeout"]:
            raise RuntimeError(f"{gateway.name}: requests failed: {summary}")
        assert gateway.proc is not None
        out[gateway.name] = (gateway.proc.cpu_seconds() - before[gateway.name]) / max(1, summary["requests"]) * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="bare,budget,limits,full", help=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--gateway-cpus", default="0")
    parser.add_argument("--load-cpus", default="1")
    args = parser.parse_args()
    pin_self(args.load_cpus)
    tmp = Path(tempfile.mkdtemp(prefix="gateway-features-"))
    (tmp / "logs").mkdir()
    (tmp / "bodies").mkdir()
    up = start_upstream(tmp, args.load_cpus)
    gateways: list[Gateway] = []
    try:
        off = BENCH / "configs" / "relaystack-off.yaml"
        gateways.append(start("off", off, up, tmp, args.gateway_cpus, None))
        for name in args.variants.split(","):
            metrics, key = VARIANTS[name]
            gateways.append(start(name, config_for(tmp, metrics), up, tmp, args.gateway_cpus, key))
        load_together(gateways, 1, args.load_cpus, tmp / "bodies")  # warm-up
        rounds = [load_together(gateways, args.duration, args.load_cpus, tmp / "bodies") for _ in range(args.rounds)]
    finally:
        for gateway in gateways:
            if gateway.proc is not None:
                gateway.proc.stop()
        up.stop()
    print(f"{'variant':<8} {'CPU µs/req':>10} {'- off':>7} {'off ÷ it':>8}   "
          f"(medians of {args.rounds} rounds, all loaded at once)")
    for gateway in gateways:
        cpu = [r[gateway.name] for r in rounds]
        delta = [r[gateway.name] - r["off"] for r in rounds]
        ratio = [r["off"] / r[gateway.name] for r in rounds]
        print(f"{gateway.name:<8} {statistics.median(cpu):>10.1f} {statistics.median(delta):>+7.1f} "
              f"{statistics.median(ratio):>8.3f}")


if __name__ == "__main__":
    main()
