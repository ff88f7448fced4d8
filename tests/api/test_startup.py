"""`relaystack run` start-up: every line printed once, "ready" only once connections are accepted."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.server import RunningServer, free_port, start_server, write_config
from support.stack import issue_config

RECORDINGS = Path(__file__).parents[1] / "recordings" / "together"


def _config_with_an_unserved_section(home: Path) -> Path:
    config = issue_config()
    config["vector_dbs"] = [{"vector_db_id": "docs", "embedding_model": "x"}]
    return write_config(home / "run.yaml", config)


@pytest.mark.parametrize("workers", [1, 2])
def test_warnings_replay_index_and_models_are_printed_once(tmp_path: Path, workers: int) -> None:
    config = _config_with_an_unserved_section(tmp_path)
    server = start_server(config, home=tmp_path, args=[
        "--record-mode", "replay", "--recordings", str(RECORDINGS), "--workers", str(workers)])
    try:
        deadline = time.monotonic() + 60
        while server.log().count(" ready") < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.log()
    finally:
        server.stop()
    assert log.count("section 'vector_dbs' is not served") == 1, log
    assert log.count("recordings indexed from") == 1, log
    assert log.count("provider 'together' (remote::together):") == 1, log
    assert log.count("relaystack ready on http://127.0.0.1:") == 1, log
    assert log.count(" ready") == workers, log  # the other worker only says it is ready
    assert "Traceback" not in log


def test_an_empty_run_yaml_warns_that_it_serves_nothing(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("")
    server = start_server(config, home=tmp_path)
    try:
        log = server.log()
    finally:
        server.stop()
    assert log.count("configures no inference provider: this server serves no models") == 1, log


def test_ready_is_printed_only_once_the_port_accepts_connections(tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.yaml", issue_config())
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "relaystack", "run", str(config), "--port", str(port)],
                                   stdout=log_file, stderr=subprocess.STDOUT, env={"RELAYSTACK_HOME": str(tmp_path),
                                                                                    "PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 60
        while "relaystack ready on" not in log_path.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()
            time.sleep(0.02)
        assert f"relaystack ready on http://127.0.0.1:{port}" in log_path.read_text()
        # the very moment "ready" is printed, a connection is accepted (no retry)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.parametrize("workers", [1, 2])
def test_start_up_lists_each_providers_models_once(tmp_path: Path, fake_together: FakeTogether, workers: int) -> None:
    """One listing call per provider per start-up, however many worker processes serve, and
    every worker serves the listed models."""
    config = write_config(tmp_path / "run.yaml", issue_config(api_key=DEFAULT_API_KEY, base_url=fake_together.base_url))
    server = start_server(config, home=tmp_path, args=["--workers", str(workers), "--log-format", "json"])
    try:
        deadline = time.monotonic() + 60
        while server.log().count(" ready") < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        sizes: dict[object, int] = {}
        # a fresh connection each time: the kernel hands them to either worker
        while len(sizes) < workers and time.monotonic() < deadline:
            listed = httpx.get(f"{server.base_url}/v1/models", headers={"Connection": "close"}).json()["data"]
            sizes[_last_models_pid(server)] = len(listed)
        assert len(sizes) == workers, f"not every worker answered: {sizes}"
        # the listing was used by every worker: discovered models beside the two configured
        assert all(size > 2 for size in sizes.values()), sizes
    finally:
        server.stop()
    assert len(fake_together.requests_to("/v1/models")) == 1, fake_together.requests_to("/v1/models")


def _last_models_pid(server: RunningServer) -> object:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [orjson.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        served = [line["pid"] for line in lines
                  if line.get("logger") == "relaystack.access" and line.get("path") == "/v1/models"]
        if served:
            return served[-1]
        time.sleep(0.05)
    raise AssertionError("no access line for GET /v1/models")
