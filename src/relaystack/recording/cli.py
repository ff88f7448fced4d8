"""``relaystack recordings ...``: look at, check and import recordings.

``verify --dir DIR`` works on any folder: every recording file parses and holds no secret.
It also checks that each recording is *used* when asked to: with ``--used-log FILE`` (the
ids replay appends when ``RELAYSTACK_RECORDINGS_USED_LOG`` / ``pytest
--recordings-used-log`` is set), used means "replayed by that run" - exact, and the
recommended CI check. With ``--tests DIR`` it is a grep: the recording's prompt (first
line of the last user message, the completion prompt or the embedding input, up to 40
characters) must appear in some ``*.py`` file under DIR; a model list counts as used if a
test mentions ``models.list`` or ``/models``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from relaystack.recording.codec import Recording, RecordingFormatError, load_recording, parse_document
from relaystack.recording.redact import find_secrets
from relaystack.recording.settings import RecordingSettings
from relaystack.recording.store import atomic_write_text, recording_files, responses_dir
from relaystack.recording.summary import fingerprint, summarize

__all__ = ["recordings"]

_DIR_HELP = (
    "Recordings directory (default: RELAYSTACK_RECORDINGS_DIR, then LLAMA_STACK_TEST_RECORDING_DIR, "
    "then tests/recordings)."
)


def _directory(value: Path | None, *, must_exist: bool = True) -> Path:
    directory = RecordingSettings.from_env(None, value, os.environ).directory
    if must_exist and not directory.is_dir():
        raise click.ClickException(f"No recordings folder at {directory} (give an existing one with --dir).")
    return directory


@click.group("recordings")
def recordings() -> None:
    """Inspect, verify and import record/replay recordings (llama-stack's format)."""


@recordings.command("list")
@click.option("--dir", "dir_", type=click.Path(path_type=Path), default=None, help=_DIR_HELP)
def list_cmd(dir_: Path | None) -> None:
    """A table of the recordings: id, endpoint, model, streaming, chunks."""
    directory = _directory(dir_)
    rows: list[tuple[str, ...]] = []
    broken: list[str] = []
    for path in recording_files(directory):
        try:
            rec = load_recording(path)
        except RecordingFormatError as exc:
            broken.append(str(exc))
            continue
        count = str(len(rec.items())) if rec.replays_as_stream or rec.is_model_list else "-"
        streaming = "yes" if rec.replays_as_stream else "no"
        rows.append((rec.id, rec.identity.endpoint or rec.identity.path, rec.identity.model or "-", streaming, count))
    _table(("ID", "ENDPOINT", "MODEL", "STREAMING", "CHUNKS"), rows)
    click.echo(f"{len(rows)} recording(s) in {directory}")
    for problem in broken:
        click.echo(f"unreadable: {problem}", err=True)
    if broken:
        raise SystemExit(1)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@recordings.command("show")
@click.argument("recording_id")
@click.option("--dir", "dir_", type=click.Path(path_type=Path), default=None, help=_DIR_HELP)
@click.option("--raw", is_flag=True, help="Print the file as stored instead of a reassembled view.")
def show_cmd(recording_id: str, dir_: Path | None, raw: bool) -> None:
    """Pretty-print one recording; a stream is shown reassembled (content, tool calls, usage)."""
    rec = _find(_directory(dir_), recording_id)
    if raw:
        click.echo(rec.path.read_text(encoding="utf-8"), nl=False)
        return
    ident = rec.identity
    click.echo(f"id:        {rec.id}")
    click.echo(f"file:      {rec.path}")
    click.echo(f"request:   {ident.method} {ident.url}")
    click.echo(f"model:     {ident.model or '-'}")
    if rec.per_test:
        click.echo(f"test id:   {rec.test_id or '- (shared: made outside any test)'}")
    click.echo(f"streaming: {'yes' if rec.replays_as_stream else 'no'}")
    click.echo("body:")
    click.echo(_indent(json.dumps(ident.body, indent=2, ensure_ascii=False)))
    click.echo("response:")
    click.echo(_indent(json.dumps(summarize(rec), indent=2, ensure_ascii=False)))


def _find(directory: Path, recording_id: str) -> Recording:
    wanted = recording_id.removesuffix(".json")
    paths = recording_files(directory)
    matches = [p for p in paths if p.stem == wanted] or [p for p in paths if p.stem.startswith(wanted)]
    if not matches:
        raise click.ClickException(f"No recording '{recording_id}' in {directory} (see `relaystack recordings list`).")
    if len(matches) > 1:
        names = ", ".join(p.stem for p in matches[:5])
        raise click.ClickException(f"'{recording_id}' is ambiguous: {names}. Give more of the id.")
    try:
        return load_recording(matches[0])
    except RecordingFormatError as exc:
        raise click.ClickException(str(exc)) from None


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


@recordings.command("verify")
@click.option("--dir", "dir_", type=click.Path(path_type=Path), default=None, help=_DIR_HELP)
@click.option("--tests", "tests_dir", type=click.Path(path_type=Path), default=None,
              help="Also check each recording is used: its prompt appears in a test under this folder.")
@click.option("--used-log", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also check each recording is used: replayed by a test run (RELAYSTACK_RECORDINGS_USED_LOG).")
def verify_cmd(dir_: Path | None, tests_dir: Path | None, used_log: Path | None) -> None:
    """Every recording parses and holds no secret (and, with --used-log or --tests, is used). Exit 1 otherwise."""
    directory = _directory(dir_)
    # llama-stack's layout (responses/*.json), else any JSON file under the folder
    paths = recording_files(directory) or sorted(p for p in directory.rglob("*.json") if not p.name.startswith("."))
    if not paths:
        raise click.ClickException(f"No recordings under {directory} (no .json file).")
    is_used = _usage_checker(tests_dir, used_log, directory)
    failed = 0
    for i, path in enumerate(paths, 1):
        problems, notes = _check(path, is_used)
        status = "ok" if not problems else "FAIL: " + "; ".join(problems)
        extra = f" ({'; '.join(notes)})" if notes else ""
        click.echo(f"[{i}/{len(paths)}] {path.stem}: {status}{extra}")
        failed += bool(problems)
    click.echo(f"{len(paths)} recording(s): {len(paths) - failed} ok, {failed} failed"
               + ("" if is_used is not None else " (usage not checked: pass --used-log or --tests)"))
    if failed:
        raise SystemExit(1)


def _check(path: Path, is_used: Any) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    notes: list[str] = []
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        rec = parse_document(json.loads(text), path)
    except (ValueError, RecordingFormatError) as exc:
        return [f"does not parse ({exc})"], notes
    problems.extend(find_secrets(text))
    if not rec.has_expected_name:
        wanted = rec.identity.per_test_hash if rec.per_test else rec.identity.short_hash
        notes.append(f"name is not the request hash {wanted}: llama-stack will not find it")
    if is_used is not None:
        used, why = is_used(rec)
        if not used:
            problems.append(f"not used by any test ({why})")
    return problems, notes


def _usage_checker(tests_dir: Path | None, used_log: Path | None, directory: Path) -> Any:
    if used_log is None and tests_dir is None:
        return None
    if used_log is not None:
        if not used_log.is_file():
            raise click.ClickException(f"--used-log {used_log} does not exist (run the tests in replay mode first).")
        ids = {line.strip() for line in used_log.read_text(encoding="utf-8").splitlines() if line.strip()}
        return lambda rec: (rec.id in ids, f"not replayed in {used_log.name}")
    assert tests_dir is not None
    if not tests_dir.is_dir():
        raise click.ClickException(f"--tests {tests_dir} is not a directory.")
    sources = "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for p in sorted(tests_dir.rglob("*.py"))
        if directory.resolve() not in p.resolve().parents
    )

    def by_grep(rec: Recording) -> tuple[bool, str]:
        if rec.is_model_list:
            return ("models.list" in sources or "/models" in sources), "no test lists models"
        text = fingerprint(rec)
        if text is None:
            return False, "it has no prompt text to look for; use --used-log"
        return text in sources, f"no test under {tests_dir} contains {text!r}"

    return by_grep


@recordings.command("import")
@click.argument("src_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--dir", "dir_", type=click.Path(path_type=Path), default=None, help=_DIR_HELP)
@click.option("--overwrite", is_flag=True, help="Replace recordings that exist with different content.")
def import_cmd(src_dir: Path, dir_: Path | None, overwrite: bool) -> None:
    """Validate and copy a llama-stack recordings folder (responses/*.json) here, unchanged."""
    target_dir = responses_dir(_directory(dir_, must_exist=False))
    paths = recording_files(src_dir)
    if not paths:
        raise click.ClickException(f"No recordings under {src_dir} (expected responses/*.json).")
    counts = {"imported": 0, "unchanged": 0, "replaced": 0, "skipped": 0, "rejected": 0}
    for i, path in enumerate(paths, 1):
        outcome = _import_one(path, target_dir, overwrite)
        counts[outcome.split(":", 1)[0]] += 1
        click.echo(f"[{i}/{len(paths)}] {path.name}: {outcome}")
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    click.echo(f"{len(paths)} file(s) from {src_dir} into {target_dir}: {summary}")
    if counts["rejected"]:
        raise SystemExit(1)


def _import_one(path: Path, target_dir: Path, overwrite: bool) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
        parse_document(json.loads(text), path)
    except (ValueError, RecordingFormatError) as exc:
        return f"rejected: does not parse ({exc})"
    secrets = find_secrets(text)
    if secrets:
        return f"rejected: holds a credential ({secrets[0]})"
    target = target_dir / path.name
    if target.exists():
        if target.read_bytes() == text.encode("utf-8"):
            return "unchanged"
        if not overwrite:
            return "skipped: a different recording with this name exists (use --overwrite)"
        atomic_write_text(target, text)
        return "replaced"
    atomic_write_text(target, text)
    return "imported"
