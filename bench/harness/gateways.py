"""The gateways under test and how each is started, pinned to the gateway CPUs.

``upstream`` is nginx itself (the ceiling), ``raw`` the minimal pass-through (the lower bound
for any Python gateway), ``relaystack-store``/``relaystack-nostore`` the product with the
inference store on and off, and ``llamastack``/``litellm`` the peers when bench/peers/setup.sh
has built their venvs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.procs import Proc, free_port
from harness.scenarios import MODELS, url_for
from harness.upstream import Upstream

BENCH = Path(__file__).resolve().parent.parent
PEERS = BENCH / "results" / "peers"


@dataclass
class Gateway:
    name: str
    base: str
    api_prefix: str = "/v1"
    by_path: bool = False  # reaches streaming bodies by upstream path, not by model id
    proc: Proc | None = None
    ready_s: float | None = None
    idle_rss: int | None = None
    models: dict[str, str] = field(default_factory=dict)  # our model id -> the id this peer uses
    # relaystack with server.auth: readiness is polled on /v1/health, and a virtual key is created
    # once started (limits, budget and usage on) for every request to carry (BENCH_TOKEN)
    admin_key: str | None = None
    token: str | None = None  # that key (also put in BENCH_TOKEN when started)

    def url(self, scenario: str) -> str:
        return url_for(self.base, self.api_prefix, scenario, by_path=self.by_path)

    def model_for(self, scenario: str) -> str | None:
        """The model id to send for ``scenario`` when this gateway names it differently."""
        ours = MODELS.get(scenario)
        return self.models.get(ours) if ours else self.models.get("bench-chat")

    def start(self, timeout: float = 90.0) -> Gateway:
        if self.proc is not None:
            self.proc.start()
            ready_url = f"{self.base}/v1/health" if self.admin_key else self.url("models")
            self.ready_s = self.proc.wait_http(ready_url, timeout=timeout)
            self.idle_rss = self.proc.rss_bytes()
            if self.admin_key:
                self.token = os.environ["BENCH_TOKEN"] = create_bench_key(self.base, self.admin_key)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def upstream_gateway(up: Upstream) -> Gateway:
    return Gateway("upstream", up.base, by_path=True)


def raw_gateway(up: Upstream, tmp: Path, cpus: str) -> Gateway:
    port = free_port()
    argv = [sys.executable, str(BENCH / "raw_relay.py"), "--port", str(port), "--upstream", up.base]
    proc = Proc("raw", argv, cpus=cpus, log=tmp / "logs" / "raw.log")
    return Gateway("raw", f"http://127.0.0.1:{port}", by_path=True, proc=proc)


def relaystack_command() -> list[str]:
    script = Path(sys.executable).with_name("relaystack")
    if script.exists():
        return [str(script)]
    if found := shutil.which("relaystack"):
        return [found]
    return [sys.executable, "-m", "relaystack"]


def relaystack_unavailable() -> str | None:
    """Why relaystack cannot be benchmarked here (None when it can)."""
    if importlib.util.find_spec("relaystack") is None:
        return "the relaystack package is not importable (pip install -e .)"
    try:
        proc = subprocess.run([*relaystack_command(), "run", "--help"], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`relaystack run --help` failed: {exc}"
    if proc.returncode != 0:
        return f"`relaystack run --help` exited {proc.returncode}: {(proc.stderr or proc.stdout)[-300:]}"
    return None


def relaystack_gateway(name: str, config: str, up: Upstream, tmp: Path, cpus: str,
                       workers: int = 1, admin_key: str | None = None,
                       env: dict[str, str] | None = None) -> Gateway:
    port = free_port()
    argv = [*relaystack_command(), "run", str(BENCH / "configs" / config), "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    env = {"BENCH_UPSTREAM": up.base, "BENCH_STORE_DIR": str(tmp / f"{name}-store"), **(env or {})}
    if admin_key:
        env["RELAYSTACK_ADMIN_KEY"] = admin_key
    proc = Proc(name, argv, cpus=cpus, log=tmp / "logs" / f"{name}.log", env=env)
    return Gateway(name, f"http://127.0.0.1:{port}", proc=proc, admin_key=admin_key)


def create_bench_key(base: str, admin_key: str) -> str:
    """A virtual key whose limits and budget are checked on every request but never reached."""
    body = json.dumps({"name": "bench", "limits": {"rpm": 10**8, "tpm": 10**11, "max_concurrent": 10**4},
                       "budget": {"max_usd": 10**9, "period": "month"}}).encode()
    request = urllib.request.Request(f"{base}/v1/admin/keys", data=body, method="POST", headers={
        "Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["key"])


def peer_gateways(up: Upstream, tmp: Path, cpus: str) -> list[Gateway]:
    """llama-stack and LiteLLM, only if bench/peers/setup.sh has created their venvs."""
    out = []
    llama = PEERS / "llamastack" / "bin" / "llama"
    if llama.exists():
        port = free_port()
        env = {"BENCH_UPSTREAM": up.base, "SQLITE_STORE_DIR": str(tmp / "llamastack-store"),
               "LLAMA_STACK_LOG_FORMAT": "json", "LLAMA_STACK_LOGGING": "all=warning"}
        argv = [str(llama), "stack", "run", str(BENCH / "peers" / "llamastack.yaml"), "--port", str(port)]
        proc = Proc("llamastack", argv, cpus=cpus, log=tmp / "logs" / "llamastack.log", env=env)
        # llama-stack 0.7 names every model provider_id/model_id
        ids = {"bench-chat": "up/bench-chat", "bench-embed": "up/bench-embed",
               **{f"bench-{p}": f"up-{p}/bench-{p}" for p in ("sse50", "sse500", "ttfb")}}
        out.append(Gateway("llamastack", f"http://127.0.0.1:{port}", proc=proc, models=ids))
    litellm = PEERS / "litellm" / "bin" / "litellm"
    if litellm.exists():
        port = free_port()
        argv = [str(litellm), "--config", str(BENCH / "peers" / "litellm.yaml"), "--port", str(port),
                "--host", "127.0.0.1", "--num_workers", "1"]
        # no master key: a loopback benchmark, nothing to protect (LiteLLM refuses to start otherwise)
        env = {"LITELLM_LOG": "ERROR", "BENCH_UPSTREAM_V1": f"{up.base}/v1",
               "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
               **{f"BENCH_UPSTREAM_{p.upper()}": f"{up.base}/{p}/v1" for p in ("sse50", "sse500", "ttfb")}}
        proc = Proc("litellm", argv, cpus=cpus, log=tmp / "logs" / "litellm.log", env=env)
        out.append(Gateway("litellm", f"http://127.0.0.1:{port}", proc=proc))
    return out
