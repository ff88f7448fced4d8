"""Start a real ``relaystack run`` in a subprocess, as a user would, and stop it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = ["RunningServer", "free_port", "start_server", "write_config"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    config: Path | None,
    *,
    home: Path,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout_s: float = 90.0,
    wait_ready: bool = False,
) -> RunningServer:
    port = free_port()
    log_path = home / f"server-{port}.log"
    home.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYSTACK_", "LLAMA_STACK_TEST_"))}
    full_env.update({"RELAYSTACK_HOME": str(home), "HF_HUB_OFFLINE": "1", **(env or {})})
    command = [sys.executable, "-m", "relaystack", "run", *([str(config)] if config else []),
               "--port", str(port), *args]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=full_env)
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"relaystack exited with {process.returncode}:\n{server.log()}")
        try:
            health = httpx.get(f"{server.base_url}/v1/health", timeout=2).json()
            if not wait_ready or health.get("ready"):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"relaystack did not become healthy in {timeout_s} s:\n{server.log()}")
