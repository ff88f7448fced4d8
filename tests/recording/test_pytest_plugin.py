"""The pytest plugin, exercised in a child pytest (it is not registered for this suite)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import relaystack

SRC = str(Path(relaystack.__file__).resolve().parents[1])

CHILD_TEST = '''
import os
from pathlib import Path

def test_fixtures(record_mode, recordings_dir, recording_settings, recording_env):
    out = Path(os.environ["CHILD_OUT"])
    out.write_text("|".join([record_mode.value, str(recordings_dir), str(recording_settings.used_log),
                             os.environ.get("RELAYSTACK_RECORD_MODE", ""), recording_env["RELAYSTACK_RECORDINGS_DIR"],
                             recording_env.get("RELAYSTACK_RECORDINGS_USED_LOG", "")]))
'''


def child_pytest(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    (tmp_path / "test_child.py").write_text(CHILD_TEST)
    out = tmp_path / "out.txt"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAYSTACK_", "LLAMA_STACK_TEST_"))}
    child_env = {**clean, "PYTHONPATH": SRC, "CHILD_OUT": str(out), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "relaystack.recording.pytest_plugin", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_child.py"), *args],
        capture_output=True, text=True, cwd=tmp_path, env=child_env, timeout=120, check=False,
    )
    return done, (out.read_text().split("|") if out.exists() else [])


def test_default_is_replay_of_tests_recordings_and_nothing_is_exported(tmp_path: Path) -> None:
    done, values = child_pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # os.environ stays untouched (fake-upstream tests must stay live); recording_env carries it
    assert values == ["replay", str(tmp_path / "tests" / "recordings"), "None", "",
                      str(tmp_path / "tests" / "recordings"), ""]
    assert "relaystack recordings: mode=replay" in done.stdout


def test_options_and_environment(tmp_path: Path) -> None:
    done, values = child_pytest(tmp_path, "--record-mode=record", "--recordings-dir=rec",
                                "--recordings-used-log=used.txt")
    assert done.returncode == 0, done.stdout + done.stderr
    assert values[:3] == ["record", str(tmp_path / "rec"), str(tmp_path / "used.txt")]
    assert values[5] == str(tmp_path / "used.txt")
    done, values = child_pytest(tmp_path, env={"LLAMA_STACK_TEST_INFERENCE_MODE": "live",
                                               "LLAMA_STACK_TEST_RECORDING_DIR": str(tmp_path / "llama")})
    assert values[:2] == ["live", str(tmp_path / "llama")]


def test_a_bad_mode_is_refused(tmp_path: Path) -> None:
    done, _ = child_pytest(tmp_path, "--record-mode=replya")
    assert done.returncode != 0
    assert "invalid choice: 'replya'" in done.stderr and "replay" in done.stderr
