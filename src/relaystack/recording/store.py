"""The recordings directory: an in-memory index for replay, atomic writes for record.

Layout (llama-stack's): ``<dir>/responses/<hash12>.json``. The reader also accepts a
directory of suites (``<dir>/<suite>/responses/*.json``, e.g. ``tests/recordings/together``)
and a ``responses`` folder given directly; files are matched by their *request*, not by
name, so llama-stack's ``models-<hash>-<digest>.json`` files are found too. New files are
always written to ``<dir>/responses/``.

The index is built once at start-up and re-scanned (only changed files are re-read) when a
request misses, so a recording added while the server runs is found without a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relaystack.recording.codec import Recording, RecordingFormatError, dump_document, load_recording
from relaystack.recording.identity import Identity
from relaystack.recording.redact import SecretSet, find_secrets

__all__ = ["RecordingSecretError", "RecordingStore", "atomic_write_text", "recording_files", "responses_dir"]

log = logging.getLogger("relaystack.recording")


class RecordingSecretError(RuntimeError):
    """The persister found a credential left after scrubbing and refused to write."""


def responses_dir(directory: Path) -> Path:
    return directory if directory.name == "responses" else directory / "responses"


def recording_files(directory: Path) -> list[Path]:
    """Every recording file under ``directory`` (see the module docstring), sorted."""
    if directory.name == "responses":
        candidates: Iterable[Path] = directory.glob("*.json")
    else:
        candidates = (p for p in directory.rglob("*.json") if p.parent.name == "responses")
    return sorted(p for p in candidates if not p.name.startswith("."))


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory + ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@dataclass(slots=True)
class _Entry:
    stamp: tuple[int, int]
    recording: Recording | None
    error: str | None = None


class RecordingStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[Path, _Entry] = {}
        self._by_key: dict[str, list[Recording]] = {}

    # -- reading -------------------------------------------------------------------

    def scan(self) -> int:
        """(Re)build the index; unchanged files are not re-read. Returns the number indexed."""
        seen: dict[Path, _Entry] = {}
        for path in recording_files(self.directory):
            try:
                stat = path.stat()
            except OSError:
                continue
            stamp = (stat.st_mtime_ns, stat.st_size)
            entry = self._files.get(path)
            if entry is None or entry.stamp != stamp:
                entry = self._load(path, stamp)
            seen[path] = entry
        self._files = seen
        by_key: dict[str, list[Recording]] = {}
        for entry in seen.values():
            if entry.recording is not None:
                by_key.setdefault(entry.recording.identity.match_key(), []).append(entry.recording)
        self._by_key = by_key
        return sum(len(v) for v in by_key.values())

    @staticmethod
    def _load(path: Path, stamp: tuple[int, int]) -> _Entry:
        try:
            return _Entry(stamp, load_recording(path))
        except RecordingFormatError as exc:
            log.warning("skipping recording %s: %s", path, exc)
            return _Entry(stamp, None, str(exc))

    @property
    def recordings(self) -> list[Recording]:
        return [r for group in self._by_key.values() for r in group]

    @property
    def broken(self) -> dict[Path, str]:
        return {p: e.error for p, e in self._files.items() if e.error is not None}

    def find(self, identity: Identity, key: str, *, rescan: bool = True) -> list[Recording]:
        """All recordings for this request (several only for model lists), best first."""
        found = self._by_key.get(key)
        if not found and rescan:
            self.scan()
            found = self._by_key.get(key)
        if not found:
            return []
        # the file llama-stack itself would read first, then by name: deterministic
        return sorted(found, key=lambda r: (r.id != identity.short_hash, str(r.path)))

    # -- writing -------------------------------------------------------------------

    def path_for(self, identity: Identity) -> Path:
        return responses_dir(self.directory) / f"{identity.short_hash}.json"

    def write(self, identity: Identity, response: dict[str, Any], secrets: SecretSet) -> Path:
        """Scrub, check, and atomically write one recording; returns its path."""
        request = secrets.scrub(identity.to_record())
        text = dump_document(request, secrets.scrub(response))
        leftovers = secrets.scan_text(text) + find_secrets(text)
        if leftovers:
            # never reached unless scrubbing has a hole: refuse rather than leak
            raise RecordingSecretError(
                f"not writing {identity.short_hash}.json: {len(leftovers)} credential-like value(s) "
                f"remain after scrubbing ({leftovers[0]})"
            )
        path = self.path_for(identity)
        atomic_write_text(path, text)
        return path
