"""Small helpers for the cluster tests (imported by name: tests/scaleout is on sys.path)."""

from __future__ import annotations

import json
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


def chat(base_url: str, text: str, model: str = CHAT_MODEL) -> dict[str, Any]:
    response = httpx.post(base_url + "/v1/chat/completions", timeout=30,
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
