"""`relaystack run` refuses bad start-up input with one clear line and exit code 2, no traceback."""

from __future__ import annotations

import os
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
