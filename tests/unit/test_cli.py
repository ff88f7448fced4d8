"""The command line refuses bad start-up input with one clear line (exit 2), never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYSTACK_", "LLAMA_STACK_TEST_"))}
    full_env.update({"RELAYSTACK_HOME": str(tmp_path), **env})
    return subprocess.run([sys.executable, "-m", "relaystack", "run", *args, "--port", "1"],
                          capture_output=True, text=True, env=full_env, timeout=60)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RELAYSTACK_RECORD_MODE": "replya"}, "choose one of live, record, replay"),
        ({"LLAMA_STACK_TEST_INFERENCE_MODE": "recrod"}, "choose one of live, record, replay"),
    ],
)
def test_a_typo_in_the_record_mode_fails_at_start_up(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = run([], tmp_path, **env)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_provider_type_names_the_known_ones(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("version: 2\nproviders:\n  inference:\n    - {provider_id: x, provider_type: remote::nope}\n")
    result = run([str(config)], tmp_path)
    assert result.returncode == 2
    assert "remote::nope" in result.stderr and "remote::openai-compat" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_config_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("version: 2\nserver:\n  port: eighty\n")
    result = run([str(config)], tmp_path)
    assert result.returncode == 2
    assert str(config) in result.stderr and "server.port" in result.stderr


def run_cli(args: list[str], tmp_path: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYSTACK_", "LLAMA_STACK_"))}
    full_env.update({"RELAYSTACK_HOME": str(tmp_path), **env})
    return subprocess.run([sys.executable, "-m", "relaystack", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--log-level", "loud"], ["--log-level", "'loud'", "debug"]),
        (["--port", "99999"], ["--port", "99999", "65535"]),
        (["--port", "0"], ["--port", "0"]),
        (["--port", "eighty"], ["--port", "eighty"]),
        (["--workers", "0"], ["--workers", "0"]),
        (["--workers", "1000"], ["--workers", "1000"]),
        (["--log-format", "xml"], ["--log-format", "json"]),
        (["--record-mode", "replya"], ["--record-mode", "replay"]),
        (["--env", "NOEQUALS"], ["--env", "KEY=VALUE"]),
        (["--no-such-option"], ["--no-such-option"]),
    ],
)
def test_every_bad_option_is_one_line_and_exit_2(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    assert_one_line_error(run_cli(["run", *args], tmp_path), 2, *needles)


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        ({"RELAYSTACK_LOG_LEVEL": "loud"}, ["RELAYSTACK_LOG_LEVEL", "loud"]),
        ({"RELAYSTACK_LOG_FORMAT": "xml"}, ["RELAYSTACK_LOG_FORMAT", "xml"]),
        ({"RELAYSTACK_PORT": "99999"}, ["RELAYSTACK_PORT", "--port"]),
        ({"LLAMA_STACK_PORT": "abc"}, ["LLAMA_STACK_PORT", "--port"]),
    ],
)
def test_bad_environment_values_are_one_line_and_exit_2(tmp_path: Path, env: dict[str, str],
                                                        needles: list[str]) -> None:
    assert_one_line_error(run_cli(["run"], tmp_path, **env), 2, *needles)


def test_a_port_in_use_is_one_line_naming_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["run", "--port", str(port)], tmp_path)
    assert_one_line_error(result, 1, "--port", str(port), "in use")
    assert "Traceback" not in result.stderr


def test_recordings_list_on_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    result = run_cli(["recordings", "list", "--dir", str(tmp_path / "nope")], tmp_path)
    assert_one_line_error(result, 1, str(tmp_path / "nope"))


def test_help_and_version_still_exit_0(tmp_path: Path) -> None:
    assert run_cli(["run", "--help"], tmp_path).returncode == 0
    version = run_cli(["--version"], tmp_path)
    assert version.returncode == 0 and "relaystack" in version.stdout
    assert "stream template proof: c" in version.stdout or "stream template proof: python" in version.stdout
