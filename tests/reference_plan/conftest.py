"""Fixtures of the reference plan: one real ``relaystack run`` subprocess replaying Together.

The server is started once per session, as a user would start it::

    relaystack run <config> --port P --record-mode replay --recordings tests/recordings/together

with a fresh ``RELAYSTACK_HOME`` (its SQLite inference store) and, in replay mode, no
TOGETHER_API_KEY at all (the reference needed a placeholder ``_NONE_``): replay works offline,
without secrets.
Clients are the two the reference used: ``openai_client`` (OpenAI SDK at the reference's
``/v1/openai/v1`` prefix, ``api_key="fake"``) and ``llama_stack_client``; ``compat_client`` runs a
test once with each.

Knobs (set by ``scripts/integration-tests.sh``, or by hand):
- record mode: pytest ``--record-mode`` (the recording plugin's option) if given, else
  ``RELAYSTACK_RECORD_MODE`` / ``LLAMA_STACK_TEST_INFERENCE_MODE``, else ``replay``;
- recordings folder: ``--recordings-dir`` if given, else ``RELAYSTACK_REFERENCE_RECORDINGS``, else
  ``tests/recordings/together`` (the plugin's own default, ``tests/recordings``, is not used);
- run config: ``RELAYSTACK_REFERENCE_CONFIG`` (a run.yaml), else ``CONFIG`` below.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from ._recordings import Recordings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RECORDINGS = REPO / "tests" / "recordings" / "together"
TEXT_MODEL = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
EMBEDDING_MODEL = "together/togethercomputer/m2-bert-80M-32k-retrieval"

# The reference's `ci-tests` distribution, reduced to what its Together run used.
CONFIG: dict[str, Any] = {
    "version": 2,
    "providers": {
        "inference": [
            {
                "provider_id": "together",
                "provider_type": "remote::together",
                "config": {
                    "api_key": "${env.TOGETHER_API_KEY:=}",
                    "base_url": "${env.TOGETHER_BASE_URL:=https://api.together.xyz/v1}",
                },
            }
        ]
    },
    "models": [
        {
            "model_id": TEXT_MODEL,
            "provider_id": "together",
            "provider_model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free",
            "model_type": "llm",
        },
        {
            "model_id": EMBEDDING_MODEL,
            "provider_id": "together",
            "provider_model_id": "togethercomputer/m2-bert-80M-32k-retrieval",
            "model_type": "embedding",
            "metadata": {"embedding_dimension": 768},
        },
    ],
    "server": {"port": 8321},
}
_SERVER_LOGS: list[Path] = []


@dataclass(frozen=True)
class Server:
    base_url: str
    mode: str
    recordings: Path
    log_path: Path


def _record_mode(config: pytest.Config) -> str:
    flag = config.getoption("--record-mode", default=None)
    mode = flag or os.environ.get("RELAYSTACK_RECORD_MODE") or os.environ.get("LLAMA_STACK_TEST_INFERENCE_MODE")
    return (mode or "replay").strip().lower()


def _recordings_dir(config: pytest.Config) -> Path:
    # an explicit --recordings-dir wins; the plugin's default (tests/recordings) is not Together's folder
    flag = config.getoption("--recordings-dir", default=None)
    return Path(flag or os.environ.get("RELAYSTACK_REFERENCE_RECORDINGS") or DEFAULT_RECORDINGS).resolve()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _used_log(recording_env: dict[str, str]) -> dict[str, str]:
    """Only the used-recordings log (pytest --recordings-used-log): mode and folder are flags."""
    return {k: v for k, v in recording_env.items() if k == "RELAYSTACK_RECORDINGS_USED_LOG"}


def _server_env(home: Path, mode: str) -> dict[str, str]:
    # mode and folder go on the command line; only the used-recordings log is inherited
    keep = {"RELAYSTACK_RECORDINGS_USED_LOG"}
    env = {k: v for k, v in os.environ.items() if k in keep or not k.startswith(("RELAYSTACK_", "LLAMA_STACK_"))}
    env["RELAYSTACK_HOME"] = str(home)
    if mode == "replay":
        # replay needs no secret (relaystack replays keyless), and a real key left in the
        # environment must not leak into the run
        env.pop("TOGETHER_API_KEY", None)
    elif not env.get("TOGETHER_API_KEY"):
        pytest.exit(f"--record-mode {mode} talks to api.together.xyz: set TOGETHER_API_KEY", returncode=4)
    return env


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.exit(f"relaystack run exited with {process.returncode}:\n{log_path.read_text()[-4000:]}", 3)
        try:
            if httpx.get(f"{base_url}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.exit(f"relaystack run not healthy after {timeout:.0f} s:\n{log_path.read_text()[-4000:]}", 3)


@pytest.fixture(scope="session")
def relaystack_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, recording_env: dict[str, str],
) -> Iterator[Server]:
    mode = _record_mode(request.config)
    recordings = _recordings_dir(request.config)
    home = tmp_path_factory.mktemp("relaystack-home")
    config_path = Path(os.environ.get("RELAYSTACK_REFERENCE_CONFIG") or home / "run.yaml")
    if "RELAYSTACK_REFERENCE_CONFIG" not in os.environ:
        config_path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    port = _free_port()
    log_path = home / "server.log"
    _SERVER_LOGS.append(log_path)
    command = [
        sys.executable, "-m", "relaystack", "run", str(config_path), "--port", str(port),
        "--record-mode", mode, "--recordings", str(recordings),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        env = {**_server_env(home, mode), **_used_log(recording_env)}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, base_url, log_path, timeout=60)
        yield Server(base_url, mode, recordings, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def replaying(relaystack_server: Server) -> bool:
    """Exact recorded content can be asserted only when the answers come from the recordings."""
    return relaystack_server.mode == "replay"


@pytest.fixture(scope="session")
def recordings(relaystack_server: Server) -> Recordings:
    return Recordings(relaystack_server.recordings)


@pytest.fixture(scope="session")
def openai_client(relaystack_server: Server) -> OpenAI:
    return OpenAI(base_url=f"{relaystack_server.base_url}/v1/openai/v1", api_key="fake", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def llama_stack_client(relaystack_server: Server) -> LlamaStackClient:
    return LlamaStackClient(base_url=relaystack_server.base_url, max_retries=0, timeout=120)


@pytest.fixture(params=["openai_client", "llama_stack_client"])
def compat_client(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def text_model_id() -> str:
    return TEXT_MODEL


@pytest.fixture(scope="session")
def embedding_model_id() -> str:
    return EMBEDDING_MODEL


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if exitstatus != 0:
        for log in _SERVER_LOGS:
            terminalreporter.write_line(f"reference plan: relaystack server log at {log}")


@pytest.fixture(scope="session")
def provider_type_of(llama_stack_client: LlamaStackClient) -> Any:
    """``model id -> provider_type`` through the server's own models and providers APIs, as the
    reference's skip helpers resolved it (by identifier, or by provider_resource_id)."""
    cache: dict[str, str] = {}

    def lookup(model_id: str) -> str:
        if not cache:
            providers = {p.provider_id: p.provider_type for p in llama_stack_client.providers.list()}
            for model in llama_stack_client.models.list():
                for key in (model.identifier, model.provider_resource_id):
                    if key:
                        cache.setdefault(key, providers[model.provider_id])
        return cache[model_id]

    return lookup
