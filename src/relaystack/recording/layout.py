"""Where recordings live on disk, in either of llama-stack's two generations.

Seed generation (llama-stack <= 0.2): one folder, ``<dir>/responses/<12 hex>.json``.

Later generation (v0.3 onward, e.g. v0.7.1): the files sit in a ``recordings/`` folder beside
the test file that made them, ``<root>/<test file's folder>/recordings/<64 hex>.json``, and
calls made outside any test go to the shared fallback folder ``<dir>/recordings/``. llama-stack
points ``<dir>`` (``LLAMA_STACK_TEST_RECORDING_DIR``) at ``tests/integration/common`` and
resolves test ids against the repository root three levels up; relaystack does the same for a
directory that ends in ``tests/integration/common``, and otherwise keeps the whole tree inside
``<dir>`` (``<dir>/tests/integration/inference/recordings/...``), so a recordings folder can be
copied around as one piece.

Reading takes every ``*.json`` in a ``responses/`` or ``recordings/`` folder anywhere under
``<dir>`` (and, for a llama-stack checkout, under ``<root>/tests``); matching is by request
and test id, not by where a file is, except that a test's own folder wins a tie.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from relaystack.errors import ConfigError

__all__ = [
    "FALLBACK_FOLDER",
    "RecordingFormat",
    "fallback_dir",
    "layout_root",
    "per_test_dir",
    "recording_files",
    "responses_dir",
]

log = logging.getLogger("relaystack.recording")

FALLBACK_FOLDER = "recordings"
_FOLDERS = frozenset({"responses", FALLBACK_FOLDER})
_LLAMA_BASE = ("tests", "integration", "common")


class RecordingFormat(enum.Enum):
    """Which generation new recordings are written in."""

    AUTO = "auto"  # the folder's existing files decide; an empty folder gets the seed format
    SEED = "seed"  # responses/<12 hex>.json, successes only (what llama-stack <= 0.2 reads)
    PER_TEST = "per-test"  # per-test folders, 64-hex names with the test id, errors recorded too

    @classmethod
    def parse(cls, text: str, *, source: str = "recording format") -> RecordingFormat:
        value = text.strip().lower()
        for fmt in cls:
            if fmt.value == value:
                return fmt
        raise ConfigError(f"Invalid {source} {text!r}: choose one of {', '.join(f.value for f in cls)}.")


def responses_dir(directory: Path) -> Path:
    """The seed generation's folder."""
    return directory if directory.name == "responses" else directory / "responses"


def fallback_dir(directory: Path) -> Path:
    """The later generation's shared folder (calls made outside any test)."""
    return directory if directory.name == FALLBACK_FOLDER else directory / FALLBACK_FOLDER


def layout_root(directory: Path) -> Path:
    """What a test id's file path is relative to (see the module docstring)."""
    resolved = directory.resolve()
    if resolved.parts[-3:] == _LLAMA_BASE:
        return resolved.parents[2]
    return directory


def per_test_dir(directory: Path, test_id: str) -> Path | None:
    """``<root>/<folder of the test file>/recordings``; None when the test id's path is not a
    plain relative path (``..``, absolute, empty): a client never chooses where files go."""
    test_file = test_id.split("::", 1)[0]
    parts = PurePosixPath(test_file.replace("\\", "/")).parts
    if not parts or test_file.startswith("/") or any(p in ("", ".", "..") or ":" in p for p in parts):
        return None
    return layout_root(directory).joinpath(*parts[:-1], FALLBACK_FOLDER)


def recording_files(directory: Path) -> list[Path]:
    """Every recording file under ``directory`` (see the module docstring), sorted."""
    candidates: list[Path] = list(_in_folders(directory))
    root = layout_root(directory)
    if root != directory:
        candidates += _in_folders(root / "tests")
    return sorted({p for p in candidates if not p.name.startswith(".")})


def _in_folders(directory: Path) -> Iterable[Path]:
    return (p for p in directory.rglob("*.json") if p.parent.name in _FOLDERS)
