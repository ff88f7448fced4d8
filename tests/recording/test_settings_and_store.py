"""Mode resolution, and atomic writes that survive a crash mid-write."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relaystack.errors import ConfigError
from relaystack.recording import RecordingSettings, RecordMode
from relaystack.recording import store as store_module
from relaystack.recording.identity import identity_of_request
from relaystack.recording.redact import SecretSet
from relaystack.recording.store import RecordingStore, atomic_write_text

from .conftest import post


@pytest.mark.parametrize(("text", "mode"), [("live", RecordMode.LIVE), (" Record ", RecordMode.RECORD),
                                            ("REPLAY", RecordMode.REPLAY)])
def test_parse_modes(text: str, mode: RecordMode) -> None:
    assert RecordMode.parse(text) is mode


def test_a_typo_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"Invalid LLAMA_STACK_TEST_INFERENCE_MODE 'replya': choose one of "
                                          r"live, record, replay"):
        RecordingSettings.from_env(None, None, {"LLAMA_STACK_TEST_INFERENCE_MODE": "replya"})


def test_default_is_live_in_tests_recordings() -> None:
    assert RecordingSettings.from_env(None, None, {}) == RecordingSettings(RecordMode.LIVE, Path("tests/recordings"))


def test_resolution_order() -> None:
    env = {"RELAYSTACK_RECORD_MODE": "record", "RELAYSTACK_RECORDINGS_DIR": "/ours",
           "LLAMA_STACK_TEST_INFERENCE_MODE": "replay", "LLAMA_STACK_TEST_RECORDING_DIR": "/llama"}
    assert RecordingSettings.from_env("live", "/flag", env) == RecordingSettings(RecordMode.LIVE, Path("/flag"))
    assert RecordingSettings.from_env(None, None, env) == RecordingSettings(RecordMode.RECORD, Path("/ours"))
    llama_only = {k: v for k, v in env.items() if k.startswith("LLAMA")}
    assert RecordingSettings.from_env(None, None, llama_only) == RecordingSettings(RecordMode.REPLAY, Path("/llama"))
    from_config = RecordingSettings.from_env(None, None, {}, config_mode="replay", config_dir="/cfg")
    assert from_config == RecordingSettings(RecordMode.REPLAY, Path("/cfg"))
    assert RecordingSettings.from_env(None, None, llama_only, config_mode="record").mode is RecordMode.REPLAY
    # a flag for the mode does not hide the environment's directory
    assert RecordingSettings.from_env("record", None, env).directory == Path("/ours")


def test_blank_values_fall_through_and_the_used_log_is_read() -> None:
    env = {"RELAYSTACK_RECORD_MODE": " ", "LLAMA_STACK_TEST_INFERENCE_MODE": "record",
           "RELAYSTACK_RECORDINGS_USED_LOG": "/tmp/used.txt"}
    settings = RecordingSettings.from_env("", None, env)
    assert settings.mode is RecordMode.RECORD and settings.used_log == Path("/tmp/used.txt")


# -- atomic writes -------------------------------------------------------------------------------

def _write_one(tmp_path: Path, answer: str) -> Path:
    identity = identity_of_request(post("http://h/v1", "/chat/completions", {"model": "m"}))
    return RecordingStore(tmp_path).write(identity, {"body": {"answer": answer}, "is_streaming": False}, SecretSet())


def test_a_failure_mid_write_leaves_the_old_file_and_no_debris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_one(tmp_path, "old")
    old = path.read_text()

    def broken_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        _write_one(tmp_path, "new")
    assert path.read_text() == old
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_a_process_killed_mid_write_never_leaves_a_partial_recording(tmp_path: Path) -> None:
    target = tmp_path / "responses" / "abc.json"
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from relaystack.recording import store
        real_write = os.fdopen

        def dying_fdopen(*args, **kwargs):
            handle = real_write(*args, **kwargs)
            original = handle.write
            def write(text):
                original(text[: len(text) // 2])
                handle.flush()
                os._exit(9)  # killed half-way through the bytes
            handle.write = write
            return handle

        store.os.fdopen = dying_fdopen
        store.atomic_write_text(Path({str(target)!r}), '{{"request": {{}}, "response": {{"body": 1}}}}\\n')
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 9, done.stderr
    assert not target.exists()
    leftovers = list(target.parent.iterdir())
    assert leftovers and all(p.name.startswith(".abc.json.") for p in leftovers)  # only the temp file
    assert RecordingStore(tmp_path).scan() == 0 and RecordingStore(tmp_path).broken == {}


def test_atomic_write_creates_directories_and_ends_with_the_text(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.json"
    atomic_write_text(path, "hello\n")
    assert path.read_text() == "hello\n"
