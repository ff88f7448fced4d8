"""Fixtures of the v0.7.1 plan: one `relaystack run` replaying llama-stack v0.7.1's inference recordings.

The server is started once per session, as a user would start it::

    relaystack run <config> --port P --record-mode replay --recordings tests/recordings/llamastack-v0.7.1

Every call a test makes carries the llama-stack test id of the case it reimplements in the
provider-data header (``{"__test_id": "tests/integration/inference/test_x.py::test_y[...]"}``),
as llama-stack's harness sends it; relaystack takes it out, never passes it on, and replays the
recordings made for that test. ``clients(test_id)`` gives the reference's two clients with it:
``openai`` (the OpenAI SDK at ``/v1``) and ``lsc`` (``llama-stack-client``, the reference's
``client_with_models``).

Knobs: ``RELAYSTACK_REFERENCE_CONFIG`` (a run.yaml; ``scripts/integration-tests.sh --stack-config``),
``--record-mode`` / ``RELAYSTACK_RECORD_MODE`` (default replay; record and live need a real
Ollama at ``OLLAMA_URL`` and an ``OPENAI_API_KEY``), ``--recordings-dir`` /
``RELAYSTACK_REFERENCE_V071_RECORDINGS`` (default ``tests/recordings/llamastack-v0.7.1``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from support.server import free_port

from ._recordings import Recordings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RECORDINGS = REPO / "tests" / "recordings" / "llamastack-v0.7.1"
TEXT_MODEL = "ollama/llama3.2:3b-instruct-fp16"
VISION_MODEL = "ollama/llama3.2-vision:11b"
REASONING_MODEL = "ollama/gpt-oss:20b"
# llama-stack ran its embedding tests on an inline sentence-transformers model (nomic-embed-text-v1.5,
# never recorded: it runs in process); relaystack's inline::sentence-transformers is all-MiniLM-L6-v2
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# llama-stack's `ci-tests` distribution, reduced to what its v0.7.1 inference run used: Ollama at
# OLLAMA_URL (llama-stack's setup sets http://0.0.0.0:11434/v1), OpenAI (whose model listing it
# recorded) and an inline embedding model
CONFIG: dict[str, Any] = {
    "version": 2,
    "providers": {
        "inference": [
            {"provider_id": "ollama", "provider_type": "remote::ollama",
             "config": {"base_url": "${env.OLLAMA_URL:=http://0.0.0.0:11434/v1}"}},
            {"provider_id": "openai", "provider_type": "remote::openai",
             "config": {"api_key": "${env.OPENAI_API_KEY:=replay-placeholder}"}},
            {"provider_id": "sentence-transformers", "provider_type": "inline::sentence-transformers",
             "config": {"model_id": EMBEDDING_MODEL}},
        ]
    },
    "models": [
        {"model_id": model, "provider_id": "ollama", "provider_model_id": model.removeprefix("ollama/"),
         "model_type": "llm"}
        for model in (TEXT_MODEL, VISION_MODEL, REASONING_MODEL)
    ],
    "server": {"port": 8321},
}
PROVIDER_DATA = "X-LlamaStack-Provider-Data"
_SERVER_LOGS: list[Path] = []


@dataclass(frozen=True)
class Server:
    base_url: str
    mode: str
    recordings: Path
    log_path: Path


@dataclass(frozen=True)
class Clients:
    """The reference's clients, sending one test's id."""

    openai: OpenAI
    lsc: LlamaStackClient
    test_id: str

    def compat(self, name: str) -> Any:
        """``compat_client``: ``openai_client`` or ``client_with_models``, as the reference named them."""
        return self.openai if name == "openai_client" else self.lsc


def llama_id(module: str, test: str, *params: str | None) -> str:
    """The pytest node id llama-stack's run gave a case: ``tests/integration/inference/<module>::<test>[<params>]``."""
    inner = "-".join(p for p in params if p is not None)
    return f"tests/integration/inference/{module}::{test}" + (f"[{inner}]" if inner else "")


def _record_mode(config: pytest.Config) -> str:
    flag = config.getoption("--record-mode", default=None)
    return (flag or os.environ.get("RELAYSTACK_RECORD_MODE") or "replay").strip().lower()


def _recordings_dir(config: pytest.Config) -> Path:
    flag = config.getoption("--recordings-dir", default=None)
    return Path(flag or os.environ.get("RELAYSTACK_REFERENCE_V071_RECORDINGS") or DEFAULT_RECORDINGS).resolve()


def _server_env(home: Path) -> dict[str, str]:
    keep = {"RELAYSTACK_RECORDINGS_USED_LOG"}
    env = {k: v for k, v in os.environ.items() if k in keep or not k.startswith(("RELAYSTACK_", "LLAMA_STACK_"))}
    env.update({"RELAYSTACK_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    return env


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.exit(f"relaystack run exited with {process.returncode}:\n{log_path.read_text()[-4000:]}", 3)
        try:
            if httpx.get(f"{base_url}/v1/version", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.exit(f"relaystack run not up after {timeout:.0f} s:\n{log_path.read_text()[-4000:]}", 3)


@pytest.fixture(scope="session")
def v071_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, recording_env: dict[str, str],
) -> Iterator[Server]:
    mode = _record_mode(request.config)
    recordings = _recordings_dir(request.config)
    home = tmp_path_factory.mktemp("relaystack-v071")
    config_path = Path(os.environ.get("RELAYSTACK_REFERENCE_CONFIG") or home / "run.yaml")
    if "RELAYSTACK_REFERENCE_CONFIG" not in os.environ:
        config_path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    port = free_port()
    log_path = home / "server.log"
    _SERVER_LOGS.append(log_path)
    command = [
        sys.executable, "-m", "relaystack", "run", str(config_path), "--port", str(port),
        "--record-mode", mode, "--recordings", str(recordings), "--recording-format", "per-test",
    ]  # fmt: skip
    env = _server_env(home)
    if "RELAYSTACK_RECORDINGS_USED_LOG" in recording_env:
        env["RELAYSTACK_RECORDINGS_USED_LOG"] = recording_env["RELAYSTACK_RECORDINGS_USED_LOG"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, base_url, log_path, timeout=90)
        yield Server(base_url, mode, recordings, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def replaying(v071_server: Server) -> bool:
    """Exact recorded content can be asserted only when the answers come from the recordings."""
    return v071_server.mode == "replay"


@pytest.fixture(scope="session")
def recordings(v071_server: Server) -> Recordings:
    return Recordings(v071_server.recordings)


@pytest.fixture(scope="session")
def clients(v071_server: Server) -> Callable[[str], Clients]:
    def make(test_id: str) -> Clients:
        header = {PROVIDER_DATA: json.dumps({"__test_id": test_id})}
        openai = OpenAI(base_url=f"{v071_server.base_url}/v1", api_key="fake", max_retries=0, timeout=120,
                        default_headers=header)
        lsc = LlamaStackClient(base_url=v071_server.base_url, max_retries=0, timeout=120, default_headers=header)
        return Clients(openai, lsc, test_id)

    return make


def provider_type(clients: Clients, model_id: str) -> str:
    """The reference's ``provider_from_model``: the model's provider through the models and providers
    APIs, asked with the test's id (so a provider's health check is the one recorded for it)."""
    models = {}
    for model in clients.lsc.models.list():
        models[model.identifier] = model
        models.setdefault(model.provider_resource_id or "", model)
    providers = {p.provider_id: p for p in clients.lsc.providers.list()}
    return str(providers[models[model_id].provider_id].provider_type)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if exitstatus != 0:
        for log in _SERVER_LOGS:
            terminalreporter.write_line(f"v0.7.1 plan: relaystack server log at {log}")
