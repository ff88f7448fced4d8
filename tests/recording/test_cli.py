"""``relaystack recordings list|show|verify|import`` through click's CliRunner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from relaystack.recording.cli import recordings

from .conftest import SEED_ID, SHARED, SHARED_FILES


def run(*args: str) -> Result:
    return CliRunner().invoke(recordings, [str(a) for a in args], catch_exceptions=False)


def prompts_test_file(directory: Path) -> Path:
    """A test source that mentions every shared recording's prompt, like a real suite would."""
    from relaystack.recording.codec import load_recording
    from relaystack.recording.summary import fingerprint

    lines = [f"PROMPT_{i} = {fingerprint(load_recording(p))!r}" for i, p in enumerate(SHARED_FILES)]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "test_prompts.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_list_shows_a_row_per_recording() -> None:
    result = run("list", "--dir", SHARED)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "ENDPOINT", "MODEL", "STREAMING", "CHUNKS"]
    assert len(lines) == 1 + 15 + 1 and lines[-1].startswith("15 recording(s)")
    seed = next(line for line in lines if line.startswith(SEED_ID)).split()
    assert seed == [SEED_ID, "/v1/chat/completions", "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free", "yes", "25"]
    embedding = next(line for line in lines if line.startswith("07c5fa34d9ca")).split()
    assert embedding[1:] == ["/v1/embeddings", "togethercomputer/m2-bert-80M-32k-retrieval", "no", "-"]


def test_list_reports_unreadable_files(shared_copy: Path) -> None:
    (shared_copy / "responses" / "zzz.json").write_text("nope")
    result = CliRunner().invoke(recordings, ["list", "--dir", str(shared_copy)])
    assert result.exit_code == 1 and "unreadable: zzz.json" in result.output


def test_show_reassembles_a_stream() -> None:
    result = run("show", SEED_ID, "--dir", SHARED)
    assert result.exit_code == 0
    view = json.loads(result.output.split("response:\n", 1)[1])
    stream = view["stream"]
    assert stream["chunks"] == 25 and stream["ids"] == ["oBUtTzC-62bZhn-9801a1ee1bea25d8"]
    [choice] = stream["choices"]
    assert choice["content"] == ("Hello! It's nice to meet you. Is there something I can help you with "
                                 "or would you like to chat?")
    assert choice["finish_reason"] == "stop" and stream["usage"]["total_tokens"] == 64
    assert "request:   POST https://api.together.xyz/v1/v1/chat/completions" in result.output


def test_show_reassembles_tool_calls_by_unique_prefix() -> None:
    result = run("show", "894fd", "--dir", SHARED)
    assert result.exit_code == 0
    [choice] = json.loads(result.output.split("response:\n", 1)[1])["stream"]["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["tool_calls"] == [{"id": "call_jy63yt7kp8hfof3sy4pim94o", "type": "function",
                                     "name": "get_weather", "arguments": '{"city":"Tokyo"}'}]


def test_show_text_completion_stream_does_not_double_text() -> None:
    result = run("show", "511eb1b92e34", "--dir", SHARED)
    [choice] = json.loads(result.output.split("response:\n", 1)[1])["stream"]["choices"]
    recorded = json.loads((SHARED / "responses" / "511eb1b92e34.json").read_text())["response"]["body"]
    assert choice["content"] == "".join(c["__data__"]["choices"][0]["text"] for c in recorded)
    assert choice["finish_reason"] == "length"


def test_show_summarizes_embeddings_and_can_print_raw() -> None:
    result = run("show", "07c5fa34d9ca", "--dir", SHARED)
    summary = json.loads(result.output.split("response:\n", 1)[1])["embeddings"]
    assert summary["count"] >= 1 and summary["dimensions"] == 768
    raw = run("show", "07c5fa34d9ca", "--dir", SHARED, "--raw")
    assert raw.output == (SHARED / "responses" / "07c5fa34d9ca.json").read_text()


@pytest.mark.parametrize(("ident", "message"), [("nothere", "No recording 'nothere'"), ("", "ambiguous")])
def test_show_unknown_or_ambiguous_ids(ident: str, message: str) -> None:
    result = CliRunner().invoke(recordings, ["show", ident, "--dir", str(SHARED)])
    assert result.exit_code == 1 and message in result.output


def test_verify_passes_when_every_recording_is_clean_and_mentioned(tmp_path: Path) -> None:
    tests_dir = tmp_path / "tests"
    prompts_test_file(tests_dir)
    result = run("verify", "--dir", SHARED, "--tests", tests_dir)
    assert result.exit_code == 0, result.output
    assert "[1/15]" in result.output and "[15/15]" in result.output
    assert result.output.splitlines()[-1] == "15 recording(s): 15 ok, 0 failed"


def test_verify_fails_on_unused_secret_and_unparsable(shared_copy: Path, tmp_path: Path) -> None:
    tests_dir = tmp_path / "tests"
    source = prompts_test_file(tests_dir)
    source.write_text(source.read_text().replace("Hello, world!", "changed"))  # seed no longer mentioned
    leaky = json.loads((shared_copy / "responses" / "0c1f45455d3b.json").read_text())
    leaky["request"]["headers"] = {"Authorization": "Bearer sk-live0123456789abcdefgh"}
    (shared_copy / "responses" / "0c1f45455d3b.json").write_text(json.dumps(leaky, indent=2) + "\n")
    (shared_copy / "responses" / "broken.json").write_text("{")
    result = CliRunner().invoke(recordings, ["verify", "--dir", str(shared_copy), "--tests", str(tests_dir)])
    assert result.exit_code == 1
    out = result.output
    assert "broken: FAIL: does not parse" in out
    assert "0c1f45455d3b: FAIL:" in out and "headers is not empty" in out and "key-shaped" in out
    assert "sk-live0123456789" not in out  # the report never repeats the secret
    assert f"{SEED_ID}: FAIL: not used by any test" in out
    assert out.splitlines()[-1].startswith("16 recording(s):") and "failed" in out.splitlines()[-1]


def test_verify_with_a_used_log_is_exact(tmp_path: Path) -> None:
    log = tmp_path / "used.txt"
    log.write_text("\n".join(p.stem for p in SHARED_FILES if p.stem != SEED_ID) + "\n")
    result = CliRunner().invoke(recordings, ["verify", "--dir", str(SHARED), "--used-log", str(log)])
    assert result.exit_code == 1
    failing = [line for line in result.output.splitlines() if "FAIL" in line]
    assert len(failing) == 1 and f"] {SEED_ID}: FAIL: not used by any test" in failing[0]
    log.write_text(log.read_text() + SEED_ID + "\n")
    assert run("verify", "--dir", SHARED, "--used-log", log).exit_code == 0


def test_verify_notes_names_llama_stack_would_not_find(shared_copy: Path, tmp_path: Path) -> None:
    tests_dir = tmp_path / "tests"
    prompts_test_file(tests_dir)
    shutil.move(shared_copy / "responses" / f"{SEED_ID}.json", shared_copy / "responses" / "renamed.json")
    result = run("verify", "--dir", shared_copy, "--tests", tests_dir)
    assert result.exit_code == 0
    assert f"renamed: ok (name is not the request hash {SEED_ID}" in result.output


def test_import_copies_a_llama_stack_folder_unchanged_and_counts(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    result = run("import", SHARED, "--dir", dest)
    assert result.exit_code == 0
    assert result.output.splitlines()[-1].endswith("15 imported, 0 unchanged, 0 replaced, 0 skipped, 0 rejected")
    for path in SHARED_FILES:
        assert (dest / "responses" / path.name).read_bytes() == path.read_bytes()
    again = run("import", SHARED, "--dir", dest)
    assert again.output.splitlines()[-1].endswith("0 imported, 15 unchanged, 0 replaced, 0 skipped, 0 rejected")


def test_import_rejects_broken_and_leaky_files_and_keeps_existing_ones(shared_copy: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    run("import", SHARED, "--dir", dest)
    responses = shared_copy / "responses"
    (responses / "aaaa.json").write_text("{")
    doc = json.loads((responses / "0c1f45455d3b.json").read_text())
    doc["response"]["body"]["__data__"]["id"] = "changed"
    (responses / "0c1f45455d3b.json").write_text(json.dumps(doc, indent=2) + "\n")
    doc["request"]["body"]["api_key"] = "tgp_v1_abcdefghijklmnopqrstuvwxyz"
    (responses / "bbbb.json").write_text(json.dumps(doc, indent=2) + "\n")
    result = CliRunner().invoke(recordings, ["import", str(shared_copy), "--dir", str(dest)])
    assert result.exit_code == 1
    assert "aaaa.json: rejected: does not parse" in result.output
    assert "bbbb.json: rejected: holds a credential" in result.output
    assert "0c1f45455d3b.json: skipped" in result.output
    assert not (dest / "responses" / "bbbb.json").exists()
    assert json.loads((dest / "responses" / "0c1f45455d3b.json").read_text())["response"]["body"]["__data__"]["id"] \
        != "changed"
    overwrite = CliRunner().invoke(recordings, ["import", str(shared_copy), "--dir", str(dest), "--overwrite"])
    assert "0c1f45455d3b.json: replaced" in overwrite.output


def test_import_of_a_folder_without_recordings_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(recordings, ["import", str(tmp_path), "--dir", str(tmp_path / "d")])
    assert result.exit_code == 1 and "No recordings under" in result.output


def test_verify_works_on_any_folder_without_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files laid out flat (no responses/ folder), checked from a directory with no tests/ at all."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in SHARED_FILES:
        shutil.copy(path, flat / path.name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(recordings, ["verify", "--dir", str(flat)])
    assert result.exit_code == 0, result.output
    assert f"{len(SHARED_FILES)} recording(s): {len(SHARED_FILES)} ok, 0 failed" in result.output
    assert "usage not checked" in result.output
    leaky = json.loads((flat / SHARED_FILES[0].name).read_text())
    leaky["request"]["headers"] = {"Authorization": "Bearer sk-live0123456789abcdefgh"}
    (flat / "leaky.json").write_text(json.dumps(leaky))
    (flat / "broken.json").write_text("{")
    result = CliRunner().invoke(recordings, ["verify", "--dir", str(flat)])
    assert result.exit_code == 1
    assert "leaky: FAIL" in result.output and "broken: FAIL: does not parse" in result.output


def test_list_on_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(recordings, ["list", "--dir", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "No recordings folder at" in result.output and "--dir" in result.output
