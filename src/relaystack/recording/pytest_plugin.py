"""pytest integration: ``--record-mode`` and ``--recordings-dir`` plus fixtures.

Not registered globally (no entry point): a suite opts in with
``pytest_plugins = ["relaystack.recording.pytest_plugin"]`` in its root conftest.py.

The suite's default is ``replay`` (offline, deterministic). The options resolve like the
server's: flag, then RELAYSTACK_RECORD_MODE / RELAYSTACK_RECORDINGS_DIR, then llama-stack's
LLAMA_STACK_TEST_INFERENCE_MODE / LLAMA_STACK_TEST_RECORDING_DIR, then replay and
``<rootdir>/tests/recordings``.

Nothing is exported to ``os.environ``: tests that run against fake upstreams must stay
live, so only a server that should record/replay gets the settings - pass the
``recording_env`` fixture's variables to its environment (or ``recording_settings`` to
``create_app``). ``--recordings-used-log FILE`` is carried the same way: every replay
appends the ids it served to FILE, for ``relaystack recordings verify --used-log FILE``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from relaystack.recording.settings import (
    DEFAULT_RECORDINGS_DIR,
    ENV_DIR,
    ENV_LLAMA_DIR,
    ENV_LLAMA_MODE,
    ENV_MODE,
    ENV_USED_LOG,
    RecordingSettings,
    RecordMode,
)

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_report_header",
    "record_mode",
    "recording_env",
    "recording_settings",
    "recordings_dir",
]

_SETTINGS_KEY = pytest.StashKey[RecordingSettings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("relaystack-recording", "relaystack record/replay")
    group.addoption(
        "--record-mode",
        action="store",
        default=None,
        choices=RecordMode.choices(),
        help="replay (default): answer upstream calls from recordings; record: call the real providers "
        "and write recordings; live: call the real providers, write nothing.",
    )
    group.addoption(
        "--recordings-dir",
        action="store",
        default=None,
        help="Recordings directory (default: tests/recordings under the rootdir).",
    )
    group.addoption(
        "--recordings-used-log",
        action="store",
        default=None,
        help="Append the id of every replayed recording to this file (for `relaystack recordings verify`).",
    )


def pytest_configure(config: pytest.Config) -> None:
    mode_flag = config.getoption("--record-mode", default=None)
    dir_flag = config.getoption("--recordings-dir", default=None)
    environ = dict(os.environ)
    if not any(environ.get(k) for k in (ENV_MODE, ENV_LLAMA_MODE)) and not mode_flag:
        mode_flag = RecordMode.REPLAY.value
    if not any(environ.get(k) for k in (ENV_DIR, ENV_LLAMA_DIR)) and not dir_flag:
        dir_flag = str(config.rootpath / DEFAULT_RECORDINGS_DIR)
    used_log = config.getoption("--recordings-used-log", default=None)
    if used_log:
        environ[ENV_USED_LOG] = str(Path(used_log).resolve())
    settings = RecordingSettings.from_env(mode_flag, dir_flag, environ)
    if not settings.directory.is_absolute():
        directory = (config.invocation_params.dir / settings.directory).resolve()
        settings = dataclasses.replace(settings, directory=directory)
    config.stash[_SETTINGS_KEY] = settings


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(_SETTINGS_KEY, None)
    if settings is None:
        return None
    return f"relaystack recordings: mode={settings.mode.value} dir={settings.directory}"


@pytest.fixture(scope="session")
def recording_settings(pytestconfig: pytest.Config) -> RecordingSettings:
    """The resolved mode, directory and used-log of this run."""
    return pytestconfig.stash[_SETTINGS_KEY]


@pytest.fixture(scope="session")
def record_mode(recording_settings: RecordingSettings) -> RecordMode:
    return recording_settings.mode


@pytest.fixture(scope="session")
def recordings_dir(recording_settings: RecordingSettings) -> Path:
    return recording_settings.directory


@pytest.fixture(scope="session")
def recording_env(recording_settings: RecordingSettings) -> dict[str, str]:
    """Environment variables that give a server (subprocess or ``create_app(environ=...)``) this run's
    record mode, directory and used-ids log."""
    env = {ENV_MODE: recording_settings.mode.value, ENV_DIR: str(recording_settings.directory)}
    if recording_settings.used_log is not None:
        env[ENV_USED_LOG] = str(recording_settings.used_log)
    return env
