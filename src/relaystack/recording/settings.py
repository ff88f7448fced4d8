"""Which record/replay mode runs, and where the recordings live.

One resolution order for every entry point (server CLI, pytest, ``relaystack recordings``):
explicit flag, then relaystack's own environment variables, then llama-stack's (so a
``LLAMA_STACK_TEST_INFERENCE_MODE=replay`` CI job keeps working unchanged), then run.yaml,
then ``live``. The default is live so that nothing is intercepted unless someone asked.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from relaystack.errors import ConfigError
from relaystack.recording.layout import RecordingFormat

__all__ = [
    "DEFAULT_RECORDINGS_DIR",
    "ENV_DIR",
    "ENV_FORMAT",
    "ENV_LLAMA_DIR",
    "ENV_LLAMA_MODE",
    "ENV_MODE",
    "ENV_USED_LOG",
    "RecordMode",
    "RecordingSettings",
]

ENV_MODE = "RELAYSTACK_RECORD_MODE"
ENV_DIR = "RELAYSTACK_RECORDINGS_DIR"
ENV_LLAMA_MODE = "LLAMA_STACK_TEST_INFERENCE_MODE"
ENV_LLAMA_DIR = "LLAMA_STACK_TEST_RECORDING_DIR"
# when set, every replayed recording id is appended to this file (read by `recordings verify`)
ENV_USED_LOG = "RELAYSTACK_RECORDINGS_USED_LOG"
# which generation record mode writes: auto (the folder's files decide), seed, per-test
ENV_FORMAT = "RELAYSTACK_RECORDING_FORMAT"

DEFAULT_RECORDINGS_DIR = Path("tests/recordings")


class RecordMode(enum.Enum):
    LIVE = "live"
    RECORD = "record"
    REPLAY = "replay"

    @classmethod
    def parse(cls, text: str, *, source: str = "record mode") -> RecordMode:
        """``RecordMode`` from user text; a typo names the valid choices."""
        value = text.strip().lower()
        for mode in cls:
            if mode.value == value:
                return mode
        choices = ", ".join(m.value for m in cls)
        raise ConfigError(f"Invalid {source} {text!r}: choose one of {choices}.")

    @classmethod
    def choices(cls) -> list[str]:
        return [m.value for m in cls]


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    mode: RecordMode
    directory: Path
    # optional: append the ids of replayed recordings here (see `relaystack recordings verify`)
    used_log: Path | None = None
    # the generation new recordings are written in (layout.RecordingFormat)
    format: RecordingFormat = RecordingFormat.AUTO

    @classmethod
    def from_env(
        cls,
        mode_flag: str | None,
        dir_flag: str | Path | None,
        environ: Mapping[str, str],
        *,
        config_mode: str | None = None,
        config_dir: str | Path | None = None,
    ) -> RecordingSettings:
        """Resolve flag > RELAYSTACK_* > LLAMA_STACK_TEST_* > run.yaml > default (live).

        Mode and directory are resolved independently: a flag for one does not hide the
        environment's value for the other.
        """
        mode_text, mode_source = _first(
            (mode_flag, "--record-mode"),
            (environ.get(ENV_MODE), ENV_MODE),
            (environ.get(ENV_LLAMA_MODE), ENV_LLAMA_MODE),
            (config_mode, "recording.mode in run.yaml"),
        )
        mode = RecordMode.parse(mode_text, source=mode_source) if mode_text else RecordMode.LIVE
        dir_text, _ = _first(
            (str(dir_flag) if dir_flag else None, "--recordings-dir"),
            (environ.get(ENV_DIR), ENV_DIR),
            (environ.get(ENV_LLAMA_DIR), ENV_LLAMA_DIR),
            (str(config_dir) if config_dir else None, "recording.dir in run.yaml"),
        )
        directory = Path(dir_text).expanduser() if dir_text else DEFAULT_RECORDINGS_DIR
        used = environ.get(ENV_USED_LOG)
        fmt_text = (environ.get(ENV_FORMAT) or "").strip()
        fmt = RecordingFormat.parse(fmt_text, source=ENV_FORMAT) if fmt_text else RecordingFormat.AUTO
        return cls(mode=mode, directory=directory, used_log=Path(used) if used else None, format=fmt)


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in candidates:
        if value is not None and value.strip():
            return value.strip(), source
    return None, "default"
