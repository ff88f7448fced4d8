"""The recordings directory: an in-memory index for replay, atomic writes for record.

Layouts (llama-stack's two generations, see layout.py): ``<dir>/responses/<hash12>.json``, and
per-test folders ``<root>/<test folder>/recordings/<hash64>.json`` with the shared fallback
``<dir>/recordings/``. The reader takes both, anywhere under ``<dir>`` (a directory of suites
such as ``tests/recordings`` included); files are matched by their *request* and *test id*,
not by name, so llama-stack's ``models-<hash>-<digest>.json`` files are found too.

Matching a request that carries a test id: that test's recordings, else those made outside
any test (the seed generation's, the fallback folder's); never another test's. Without a test
id: every recording with the same request, as before. Model listings merge all that match. A
request with a query string (a page of a listing) is answered by the recordings of that query,
else by those recorded without any (llama-stack's never have one).

Writing: the seed format (``responses/``, successes only) or the per-test one (errors too), as
``RecordingFormat`` says; ``auto`` follows the files already there (an empty folder: seed).

The index is built once at start-up and re-scanned (only changed files are re-read) when a
request misses, so a recording added while the server runs is found without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relaystack.recording.codec import Recording, RecordingFormatError, dump_document, load_recording
from relaystack.recording.identity import Identity
from relaystack.recording.layout import (
    RecordingFormat,
    fallback_dir,
    per_test_dir,
    recording_files,
    responses_dir,
)
from relaystack.recording.redact import SecretSet, find_secrets

__all__ = ["RecordingSecretError", "RecordingStore", "atomic_write_text", "recording_files", "responses_dir"]

log = logging.getLogger("relaystack.recording")


class RecordingSecretError(RuntimeError):
    """The persister found a credential left after scrubbing and refused to write."""


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
    def __init__(self, directory: Path, fmt: RecordingFormat = RecordingFormat.AUTO) -> None:
        self.directory = directory
        self.requested_format = fmt
        self._format: RecordingFormat | None = None if fmt is RecordingFormat.AUTO else fmt
        self._files: dict[Path, _Entry] = {}
        self._by_key: dict[str, list[Recording]] = {}
        # whether the index was built (``scan``) at least once
        self.indexed = False
        self._format_source = "as asked"
        self._announced = False

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
        self.indexed = True
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

    def find(self, identity: Identity, *, rescan: bool = True) -> list[Recording]:
        """The recordings that answer this request (several only for model lists), best first."""
        found = self._matching(identity)
        if not found and rescan:
            self.scan()
            found = self._matching(identity)
        own = per_test_dir(self.directory, identity.test_id) if identity.test_id else None

        def rank(rec: Recording) -> tuple[bool, bool, str]:
            # the test's own folder, then the file llama-stack itself would read, then by path
            name = identity.per_test_hash if rec.per_test else identity.short_hash
            return (own is not None and rec.path.parent != own, rec.id != name, str(rec.path))

        return sorted(found, key=rank)

    def _matching(self, identity: Identity) -> list[Recording]:
        found = self._same_request(identity)
        if not found and identity.query:  # recorded without its query (llama-stack's files, older ones)
            found = self._same_request(identity.without_query())
        return found

    def _same_request(self, identity: Identity) -> list[Recording]:
        same = self._by_key.get(identity.match_key(), [])
        if identity.test_id is None:
            return list(same)
        return [r for r in same if r.test_id == identity.test_id] or [r for r in same if r.test_id is None]

    def candidates(self, identity: Identity) -> list[Recording]:
        """What a miss is compared with: the recordings of the same test, if it has any."""
        if identity.test_id is not None:
            mine = [r for r in self.recordings if r.test_id == identity.test_id]
            if mine:
                return mine
        return self.recordings

    # -- writing -------------------------------------------------------------------

    @property
    def format(self) -> RecordingFormat:
        """The generation new recordings are written in (``auto`` resolved on first use)."""
        if self._format is None:
            if not self._files:
                self.scan()
            found = [e.recording for e in self._files.values() if e.recording is not None]
            per_test = any(r.per_test for r in found)
            self._format = RecordingFormat.PER_TEST if per_test else RecordingFormat.SEED
            self._format_source = "as the files there" if found else "an empty folder"
        return self._format

    def announce_format(self) -> None:
        """Say once which generation record mode writes (replay mode never needs to say it)."""
        if not self._announced:
            self._announced = True
            log.info("record: writing the %s format in %s (%s)", self.format.value, self.directory,
                     self._format_source)

    def path_for(self, identity: Identity, response: dict[str, Any] | None = None) -> Path:
        if self.format is RecordingFormat.SEED:
            return responses_dir(self.directory) / f"{identity.short_hash}.json"
        name = identity.per_test_hash
        if identity.is_model_list and response is not None:
            name = f"models-{name}-{model_digest(identity, response)}"
        folder = per_test_dir(self.directory, identity.test_id) if identity.test_id else None
        if identity.test_id and folder is None:
            log.warning("record: test id %r is not a relative path; writing to the shared folder", identity.test_id)
        return (folder or fallback_dir(self.directory)) / f"{name}.json"

    def write(self, identity: Identity, response: dict[str, Any], secrets: SecretSet) -> Path | None:
        """Scrub, check, and atomically write one recording; returns its path (None: a recorded
        success is never replaced by an error)."""
        self.announce_format()
        per_test = self.format is RecordingFormat.PER_TEST
        if per_test and identity.operation == "/models" and "envelope" not in response \
                and isinstance(response.get("body"), list):
            # a bare array on the wire; without the mark a later-generation listing replays as a page
            response = {**response, "envelope": None}
        path = self.path_for(identity, response)
        if response.get("is_exception") and _holds_success(path):
            log.warning("record: %s already holds a success; the error is not written over it", path)
            return None
        request = secrets.scrub(identity.to_record())
        text = dump_document(request, secrets.scrub(response), per_test=per_test, test_id=identity.test_id)
        leftovers = secrets.scan_text(text) + find_secrets(text)
        if leftovers:
            # never reached unless scrubbing has a hole: refuse rather than leak
            raise RecordingSecretError(
                f"not writing {path.name}: {len(leftovers)} credential-like value(s) "
                f"remain after scrubbing ({leftovers[0]})"
            )
        atomic_write_text(path, text)
        return path


def model_digest(identity: Identity, response: dict[str, Any]) -> str:
    """llama-stack's ``models-<hash>-<digest>``: 8 hex of the sorted, ``|``-joined model ids."""
    body = response.get("body")
    items: Any = body if isinstance(body, list) else []
    if isinstance(body, dict):
        page = body.get("__data__", body)
        items = page.get("models", page.get("data", page.get("items", []))) if isinstance(page, dict) else []
    if not isinstance(items, list):
        items = []
    key = "model" if identity.endpoint == "/api/tags" else "id"
    ids = set()
    for item in items:
        data = item.get("__data__", item) if isinstance(item, dict) else {}
        if isinstance(data, dict) and data.get(key) is not None:
            ids.add(str(data[key]))
    return hashlib.sha256("|".join(sorted(ids)).encode()).hexdigest()[:8]


def _holds_success(path: Path) -> bool:
    try:
        return not load_recording(path).is_exception
    except (RecordingFormatError, OSError):
        return False
