"""Small helpers for the cluster tests (imported by name: tests/scaleout is on sys.path)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fakes.fake_together import FakeTogether
from support.stack import CHAT_MODEL

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "cluster.py"
ADMIN_KEY = "cluster-admin-" + secrets.token_hex(16)
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ROUTED_MODEL = "routed"  # deployments: "broken" (always refused, tried first), then "together"


def cluster_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with server.auth on and the routed model over a deployment that always fails."""
    config["server"]["auth"] = {"provider_config": {"type": "virtual_keys"}}
    config["providers"]["inference"].append({"provider_id": "broken", "provider_type": "remote::openai-compat",
                                             "config": {"base_url": "http://127.0.0.1:9/v1", "api_key": "unused"}})
    upstream = "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
    config["models"].append({"model_id": ROUTED_MODEL, "model_type": "llm", "deployments": [
        {"name": "broken", "provider_id": "broken", "provider_model_id": upstream, "priority": 0},
        {"name": "together", "provider_id": "together", "provider_model_id": upstream, "priority": 1}],
        "routing": {"retries": 0, "cooldown": {"failures": 1, "window_s": 60, "cooldown_s": 300}}})
    return config


@dataclass
class Cluster:
    directory: Path
    env: dict[str, str]
    fake: FakeTogether
    dsn: str
    redis_prefix: str

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(CLUSTER), *args, "--dir", str(self.directory)],
                              env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def status(self) -> dict[str, Any]:
        result = self.run("status", "--json")
        return dict(json.loads(result.stdout))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.status()['port']}"

    def instance_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{i['port']}" for i in self.status()["instances"]]


def chat(base_url: str, text: str, model: str = CHAT_MODEL, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.post(base_url + "/v1/chat/completions", timeout=30, headers=headers or ADMIN,
                          json={"model": model, "messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200, response.text
    assert response.headers.get("x-relaystack-store") != "failed"
    return dict(response.json())


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
