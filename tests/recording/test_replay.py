"""Replay mode: answers from recordings, tolerant matching, loud misses, never the network."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from relaystack.errors import ConfigError, ReplayMissError
from relaystack.recording import RecordingSettings, RecordMode, ReplayingUpstream, wrap_upstream
from relaystack.recording.codec import TYPE_MODEL, build_response, dump_document
from relaystack.recording.identity import identity_of_request
from relaystack.recording.redact import SecretSet
from relaystack.recording.store import RecordingStore
from relaystack.upstream.base import UpstreamRequest

from .conftest import SEED_ID, SHARED, SHARED_FILES, TOGETHER, get, post, request_of, sse_payloads

SEED_BODY = {
    "model": "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free",
    "messages": [{"role": "user", "content": "Hello, world!"}],
    "stream": True,
}


class ExplodingUpstream:
    """An inner upstream replay must never touch."""

    def __init__(self) -> None:
        self.closed = False

    async def send(self, request: UpstreamRequest) -> Any:
        raise AssertionError(f"replay called the live upstream for {request.url}")

    async def aclose(self) -> None:
        self.closed = True


def replayer(directory: Path = SHARED, **kwargs: Any) -> ReplayingUpstream:
    upstream = wrap_upstream(ExplodingUpstream(), RecordingSettings(RecordMode.REPLAY, directory, **kwargs))
    assert isinstance(upstream, ReplayingUpstream)
    return upstream


def _recorded(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_live_mode_returns_the_inner_upstream_itself() -> None:
    inner = ExplodingUpstream()
    assert wrap_upstream(inner, RecordingSettings(RecordMode.LIVE, Path("nowhere"))) is inner


def test_replay_of_a_missing_directory_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        wrap_upstream(ExplodingUpstream(), RecordingSettings(RecordMode.REPLAY, tmp_path / "nope"))


async def test_seed_replays_exactly_its_25_chunks() -> None:
    recorded = [c["__data__"] for c in _recorded(SHARED / "responses" / f"{SEED_ID}.json")["response"]["body"]]
    response = await replayer().send(post(TOGETHER, "/chat/completions", SEED_BODY))
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["x-relaystack-recording"] == SEED_ID
    payloads = await sse_payloads(response)
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert len(chunks) == 25
    assert chunks == recorded  # ids, content, finish_reason, usage, vendor fields: all of it
    content = "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks)
    assert content == "Hello! It's nice to meet you. Is there something I can help you with or would you like to chat?"
    assert {c["id"] for c in chunks} == {"oBUtTzC-62bZhn-9801a1ee1bea25d8"}
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 24 + ["stop"]
    assert chunks[-1]["usage"]["total_tokens"] == 64


async def test_each_event_is_one_compact_data_line() -> None:
    response = await replayer().send(post(TOGETHER, "/chat/completions", SEED_BODY))
    pieces = [p async for p in response.iter_chunks()]
    assert len(pieces) == 26
    assert all(p.startswith(b"data: {") and p.endswith(b"}\n\n") for p in pieces[:-1])
    assert b'", "' not in pieces[0]  # compact separators
    assert pieces[-1] == b"data: [DONE]\n\n"


@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.stem)
async def test_every_shared_recording_replays_what_was_recorded(path: Path) -> None:
    recorded = _recorded(path)["response"]
    response = await replayer().send(request_of(path))
    if recorded["is_streaming"]:
        payloads = await sse_payloads(response)
        assert [json.loads(p) for p in payloads[:-1]] == [c["__data__"] for c in recorded["body"]]
        assert payloads[-1] == b"[DONE]"
    else:
        assert response.headers["content-type"] == "application/json"
        assert json.loads(await response.read()) == recorded["body"]["__data__"]


async def test_matching_tolerates_key_order_float_noise_host_and_extra_body(shared_copy: Path) -> None:
    upstream = replayer(shared_copy)
    reordered = {"stream": True, "messages": [{"content": "Hello, world!", "role": "user"}],
                 "model": SEED_BODY["model"]}
    response = await upstream.send(post("http://127.0.0.1:1/v1", "/chat/completions", reordered))
    assert response.headers["x-relaystack-recording"] == SEED_ID
    # a completions body recorded with `extra_body: {}` matches the wire body without it
    completion = {"model": SEED_BODY["model"], "stream": False,
                  "prompt": "Respond to this question and explain your answer. Complete the sentence using one word: "
                            "Roses are red, violets are "}
    response = await upstream.send(post(TOGETHER, "/completions", completion))
    assert response.headers["x-relaystack-recording"] == "565b1072cb9d"
    # float noise: record a body with temperature=0.7 and replay it with 0.70000001
    body = {**SEED_BODY, "stream": False, "temperature": 0.7}
    _plant(shared_copy, body, {"id": "x", "object": "chat.completion", "choices": []})
    response = await upstream.send(post(TOGETHER, "/chat/completions", {**body, "temperature": 0.70000001}))
    assert json.loads(await response.read())["id"] == "x"


def _plant(directory: Path, body: dict[str, Any], answer: Any, *, op: str = "/chat/completions",
           name: str | None = None) -> Path:
    identity = identity_of_request(post(TOGETHER, op, body))
    response = {"body": {"__type__": "x", "__data__": answer}, "is_streaming": False}
    path = directory / "responses" / f"{name or identity.short_hash}.json"
    path.write_text(dump_document(identity.to_record(), response))
    return path


async def test_a_recording_added_at_runtime_is_found_on_a_miss(shared_copy: Path) -> None:
    upstream = replayer(shared_copy)
    body = {**SEED_BODY, "messages": [{"role": "user", "content": "added later"}], "stream": False}
    with pytest.raises(ReplayMissError):
        await upstream.send(post(TOGETHER, "/chat/completions", body))
    _plant(shared_copy, body, {"id": "late"})
    response = await upstream.send(post(TOGETHER, "/chat/completions", body))
    assert json.loads(await response.read()) == {"id": "late"}


async def test_a_miss_names_the_request_the_file_and_how_to_record(caplog: pytest.LogCaptureFixture) -> None:
    body = {**SEED_BODY, "messages": [{"role": "user", "content": "Hello, world?"}]}
    caplog.set_level(logging.WARNING, logger="relaystack.recording")
    with pytest.raises(ReplayMissError) as info:
        await replayer().send(post(TOGETHER, "/chat/completions", body))
    err = info.value
    assert err.status_code == 404 and err.code == "recording_not_found"
    message = err.to_dict()["error"]["message"]
    assert "POST /v1/chat/completions" in message and SEED_BODY["model"] in message
    expected = identity_of_request(post(TOGETHER, "/chat/completions", body)).short_hash
    assert f"responses/{expected}.json" in message
    assert "--record-mode record" in message and "pytest --record-mode=record" in message
    assert f"nearest recording is {SEED_ID}" in message and "messages[0].content" in message
    logged = [r.getMessage() for r in caplog.records if r.name == "relaystack.recording"]
    assert any(SEED_ID in m and "'Hello, world?' (request) vs 'Hello, world!' (recording)" in m for m in logged)


async def test_a_repeated_miss_is_logged_once_and_answered_the_same(caplog: pytest.LogCaptureFixture) -> None:
    """A suite that retries a missing call, or a client in a loop, must not flood the log."""
    upstream = replayer()
    caplog.set_level(logging.DEBUG, logger="relaystack.recording")
    errors = []
    for content in ["missing one"] * 5 + ["missing two"] * 3:
        body = {**SEED_BODY, "messages": [{"role": "user", "content": content}]}
        with pytest.raises(ReplayMissError) as info:
            await upstream.send(post(TOGETHER, "/chat/completions", body))
        errors.append(info.value.to_dict())
    warned = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.WARNING and "replay miss" in r.getMessage()]
    assert len(warned) == 2 and "missing one" in warned[0] and "missing two" in warned[1]
    assert errors[:5] == [errors[0]] * 5 and errors[5:] == [errors[5]] * 3
    assert "nearest recording" in errors[0]["error"]["message"]
    # an unrecorded listing is no failure (the provider serves the config's models): said at info
    with pytest.raises(ReplayMissError):
        await upstream.send(get(TOGETHER, "/models"))
    [listing] = [r for r in caplog.records if "replay miss: GET" in r.getMessage()]
    assert listing.levelno == logging.INFO
    assert not any("record: writing" in r.getMessage() for r in caplog.records)  # replay writes nothing


def test_providers_sharing_the_recordings_folder_index_it_once(caplog: pytest.LogCaptureFixture) -> None:
    from relaystack.api.app import create_app
    from relaystack.config import parse_config

    caplog.set_level(logging.INFO, logger="relaystack.recording")
    remote = [("together", "remote::together"), ("compat", "remote::openai-compat"), ("vllm", "remote::vllm")]
    config = parse_config({
        "version": 2, "storage": {"db_path": ":memory:"},
        "providers": {"inference": [{"provider_id": pid, "provider_type": kind,
                                     "config": {"base_url": "http://127.0.0.1:9/v1"}} for pid, kind in remote]},
    }, source="<test>")
    app = create_app(config, record_mode="replay", recordings_dir=str(SHARED), environ={})
    indexed = [r.getMessage() for r in caplog.records if "recordings indexed" in r.getMessage()]
    assert len(indexed) == 1, indexed
    stores = {id(p.upstream.store) for p in app.providers}  # type: ignore[attr-defined]
    assert len(stores) == 1


async def test_miss_log_lists_added_and_removed_fields(caplog: pytest.LogCaptureFixture) -> None:
    body = {**SEED_BODY, "temperature": 0.2}
    del body["stream"]
    caplog.set_level(logging.WARNING, logger="relaystack.recording")
    with pytest.raises(ReplayMissError):
        await replayer().send(post(TOGETHER, "/chat/completions", body))
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "stream: absent in request, recording has " in logged
    assert "temperature: request has 0.2, absent in recording" in logged


async def test_a_miss_in_an_empty_directory_still_explains(tmp_path: Path) -> None:
    with pytest.raises(ReplayMissError, match="To record it"):
        await replayer(tmp_path).send(post(TOGETHER, "/embeddings", {"model": "e", "input": "x"}))


async def test_model_list_replays_the_bare_array_and_merges_variants(tmp_path: Path) -> None:
    (tmp_path / "responses").mkdir()
    identity = identity_of_request(get(TOGETHER, "/models"))

    def write(name: str, models: list[dict[str, Any]]) -> None:
        response = {"body": [{"__type__": TYPE_MODEL, "__data__": m} for m in models], "is_streaming": True}
        (tmp_path / "responses" / name).write_text(dump_document(identity.to_record(), response))

    write(f"{identity.short_hash}.json", [{"id": "z", "type": "chat"}, {"id": "a", "type": "chat"}])
    upstream = replayer(tmp_path)
    response = await upstream.send(get(TOGETHER, "/models", {"Authorization": "Bearer dummy"}))
    assert json.loads(await response.read()) == [{"id": "z", "type": "chat"}, {"id": "a", "type": "chat"}]
    # llama-stack's per-model-set variants of the same request are merged: union by id, sorted
    write(f"models-{identity.short_hash}-0badcafe.json", [{"id": "m", "type": "embedding"}, {"id": "a"}])
    upstream = replayer(tmp_path)
    response = await upstream.send(get(TOGETHER, "/models"))
    assert [m["id"] for m in json.loads(await response.read())] == ["a", "m", "z"]


async def test_a_listing_under_items_is_recorded_as_it_came_and_merged(tmp_path: Path) -> None:
    """OCI lists its models as ``{"items": [...]}`` at ``.../models``: kept as the object it was."""
    oci = "http://127.0.0.1:9/20231130"
    identity = identity_of_request(get(oci, "/models"))
    listing = {"items": [{"id": "ocid1.z", "displayName": "cohere.command-r"},
                         {"id": "ocid1.a", "displayName": "meta.llama-3.3"}], "opc": "page-1"}
    response = build_response(identity.operation, listing, streaming=False)
    assert response == {"body": listing, "is_streaming": False}
    store = RecordingStore(tmp_path)
    store.write(identity, response, SecretSet())
    replayed = await (await replayer(tmp_path).send(get(oci, "/models"))).read()
    assert json.loads(replayed) == listing
    # two recordings of the listing (per-model-set variants): one listing, the union by id, sorted
    variant = {"items": [{"id": "ocid1.m", "displayName": "cohere.embed-v4.0"}], "opc": "page-1"}
    (tmp_path / "responses" / f"models-{identity.short_hash}-0badcafe.json").write_text(
        dump_document(identity.to_record(), build_response(identity.operation, variant, streaming=False)))
    merged = json.loads(await (await replayer(tmp_path).send(get(oci, "/models"))).read())
    assert merged["opc"] == "page-1" and "data" not in merged
    assert [m["id"] for m in merged["items"]] == ["ocid1.a", "ocid1.m", "ocid1.z"]


async def test_used_ids_are_counted_and_logged(tmp_path: Path) -> None:
    log_file = tmp_path / "used.txt"
    upstream = replayer(used_log=log_file)
    for _ in range(2):
        await upstream.send(post(TOGETHER, "/chat/completions", SEED_BODY))
    assert upstream.replayed[SEED_ID] == 2
    assert log_file.read_text().splitlines() == [SEED_ID, SEED_ID]


async def test_aclose_closes_the_inner_upstream() -> None:
    inner = ExplodingUpstream()
    upstream = wrap_upstream(inner, RecordingSettings(RecordMode.REPLAY, SHARED))
    await upstream.aclose()
    assert inner.closed


def test_broken_files_are_skipped_and_reported(shared_copy: Path) -> None:
    (shared_copy / "responses" / "bad.json").write_text("{")
    (shared_copy / "responses" / ".tmp-half.json").write_text("{")
    store = RecordingStore(shared_copy)
    assert store.scan() == 15
    assert [p.name for p in store.broken] == ["bad.json"]


def test_store_reads_suites_and_a_responses_folder_directly(tmp_path: Path) -> None:
    shutil.copytree(SHARED, tmp_path / "suites" / "together")
    assert RecordingStore(tmp_path / "suites").scan() == 15
    assert RecordingStore(tmp_path / "suites" / "together" / "responses").scan() == 15


async def test_a_miss_on_an_endpoint_without_recordings_does_not_point_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="relaystack.recording")
    with pytest.raises(ReplayMissError) as info:
        await replayer().send(get(TOGETHER, "/models"))
    message = info.value.message
    assert "GET /v1/models" in message and "no recording of this endpoint at all" in message
    assert "nearest" not in message
    assert any("holds no recording of /v1/models" in r.getMessage() for r in caplog.records)
