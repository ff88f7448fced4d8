"""Fault injection on replay: grammar, cut streams, stalls, malformed events, error statuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relaystack.errors import InvalidRequestError, UpstreamConnectionError
from relaystack.recording import FAULT_GRAMMAR, FaultSpec
from relaystack.recording import faults as faults_module

from .conftest import SEED_ID, TOGETHER, post
from .test_replay import SEED_BODY, replayer


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Count requested stalls instead of sleeping (no timed assertions)."""
    calls: list[float] = []

    async def fake_stall(seconds: float) -> None:
        calls.append(seconds)

    monkeypatch.setattr(faults_module, "stall", fake_stall)
    return calls


def seed_request(fault: str | None = None) -> Any:
    return post(TOGETHER, "/chat/completions", SEED_BODY, fault=fault)


async def pieces_until_error(response: Any) -> tuple[list[bytes], BaseException | None]:
    got: list[bytes] = []
    try:
        async for piece in response.iter_chunks():
            got.append(piece)
    except Exception as exc:
        return got, exc
    return got, None


# -- grammar ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("cut-after=3", FaultSpec(cut_after=3)),
        ("stall=2.5", FaultSpec(stall=2.5)),
        ("stall=1;stall-after=4", FaultSpec(stall=1.0, stall_after=4)),
        ("malformed-after=2", FaultSpec(malformed_after=2)),
        ("status=429;retry-after=2", FaultSpec(status=429, retry_after=2.0)),
        (" status=500 ", FaultSpec(status=500)),
        ("STATUS=503; Retry-After=1;", FaultSpec(status=503, retry_after=1.0)),
        ("cut-after=5;malformed-after=1;stall=0.5", FaultSpec(cut_after=5, malformed_after=1, stall=0.5)),
    ],
)
def test_valid_specs_parse(text: str, spec: FaultSpec) -> None:
    assert FaultSpec.parse(text) == spec
    assert FaultSpec.parse(str(spec)) == spec  # str() is a valid spec again


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "it is empty"),
        ("cut-after", "is not key=value"),
        ("cut=3", "unknown key 'cut'"),
        ("cut-after=-1", "must be >= 0"),
        ("cut-after=two", "not a whole number"),
        ("stall=forever", "not a number of seconds"),
        ("stall=9999", "between 0 and"),
        ("status=200", "400-599"),
        ("status=abc", "not an HTTP status"),
        ("retry-after=2", "retry-after needs a status"),
        ("stall-after=2", "stall-after needs a stall"),
        ("status=500;status=503", "given twice"),
    ],
)
def test_invalid_specs_name_the_reason_and_the_grammar(text: str, reason: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        FaultSpec.parse(text)
    err = info.value
    assert reason in err.message and FAULT_GRAMMAR in err.message
    assert err.status_code == 400 and err.param == "X-Relaystack-Fault" and err.code == "invalid_fault_spec"


async def test_an_invalid_header_fails_the_request() -> None:
    with pytest.raises(InvalidRequestError, match="Grammar"):
        await replayer().send(seed_request("cut-after=oops"))


# -- stream faults ---------------------------------------------------------------------------------

async def test_cut_after_raises_mid_iteration_after_exactly_n_chunks() -> None:
    response = await replayer().send(seed_request("cut-after=3"))
    assert response.status == 200
    got, error = await pieces_until_error(response)
    assert isinstance(error, UpstreamConnectionError)
    assert error.status_code == 502 and "cut-after=3" in error.message
    assert len(got) == 3 and all(p.startswith(b"data: {") for p in got)
    assert b"[DONE]" not in b"".join(got)


async def test_cut_after_every_chunk_still_withholds_done() -> None:
    got, error = await pieces_until_error(await replayer().send(seed_request("cut-after=25")))
    assert isinstance(error, UpstreamConnectionError)
    assert len(got) == 25 and b"[DONE]" not in got[-1]


async def test_cut_after_zero_also_breaks_read() -> None:
    response = await replayer().send(seed_request("cut-after=0"))
    with pytest.raises(UpstreamConnectionError):
        await response.read()


async def test_malformed_after_inserts_one_bad_event_and_continues() -> None:
    got, error = await pieces_until_error(await replayer().send(seed_request("malformed-after=2")))
    assert error is None
    assert got[2] == b"data: {not json\n\n"
    assert len(got) == 25 + 1 + 1  # chunks, the malformed event, [DONE]
    assert got[-1] == b"data: [DONE]\n\n"


async def test_stall_sleeps_before_the_first_chunk(sleeps: list[float]) -> None:
    response = await replayer().send(seed_request("stall=2.5"))
    iterator = response.iter_chunks()
    assert sleeps == []  # headers came back without waiting
    await iterator.__anext__()
    assert sleeps == [2.5]


async def test_stall_after_k_sleeps_before_chunk_k(sleeps: list[float]) -> None:
    response = await replayer().send(seed_request("stall=1.5;stall-after=4"))
    got = []
    async for piece in response.iter_chunks():
        got.append(piece)
        if len(got) == 4:
            assert sleeps == []
    assert sleeps == [1.5] and len(got) == 26


# -- status faults ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("spec", "status", "retry_after", "err_type"),
    [
        ("status=429;retry-after=2", 429, "2", "rate_limit_error"),
        ("status=500", 500, None, "api_error"),
        ("status=503;retry-after=1", 503, "1", "api_error"),
        ("status=400", 400, None, "invalid_request_error"),
    ],
)
async def test_status_faults_answer_an_openai_shaped_error(
    spec: str, status: int, retry_after: str | None, err_type: str
) -> None:
    response = await replayer().send(seed_request(spec))
    assert response.status == status
    assert response.headers.get("retry-after") == retry_after
    assert response.headers.get("Retry-After") == retry_after  # case-insensitive, like aiohttp's
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(await response.read())
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == err_type and "Injected fault" in body["error"]["message"]


async def test_status_faults_need_no_recording() -> None:
    body = {**SEED_BODY, "messages": [{"role": "user", "content": "never recorded"}]}
    response = await replayer().send(post(TOGETHER, "/chat/completions", body, fault="status=503;retry-after=1"))
    assert response.status == 503


async def test_status_with_stall_waits_before_answering(sleeps: list[float]) -> None:
    response = await replayer().send(seed_request("status=500;stall=3"))
    assert response.status == 500 and sleeps == [3.0]


async def test_faults_on_a_non_streaming_recording() -> None:
    body = {**SEED_BODY, "stream": False}
    clean = await (await replayer().send(post(TOGETHER, "/chat/completions", body))).read()
    assert json.loads(clean)["object"] == "chat.completion"
    response = await replayer().send(post(TOGETHER, "/chat/completions", body, fault="malformed-after=0"))
    assert await response.read() == b"data: {not json\n\n" + clean
    response = await replayer().send(post(TOGETHER, "/chat/completions", body, fault="cut-after=0"))
    with pytest.raises(UpstreamConnectionError):
        await response.read()


# -- the test API ----------------------------------------------------------------------------------

async def test_inject_applies_until_cleared_and_the_header_wins() -> None:
    upstream = replayer()
    upstream.inject("status=500")
    assert (await upstream.send(seed_request())).status == 500
    assert (await upstream.send(seed_request())).status == 500
    assert (await upstream.send(seed_request("status=429"))).status == 429
    upstream.inject(None)
    response = await upstream.send(seed_request())
    assert response.status == 200 and response.headers["x-relaystack-recording"] == SEED_ID


async def test_faults_context_manager_restores_the_previous_state() -> None:
    upstream = replayer()
    with upstream.faults(FaultSpec(cut_after=1)) as spec:
        assert spec.cut_after == 1
        _, error = await pieces_until_error(await upstream.send(seed_request()))
        assert isinstance(error, UpstreamConnectionError)
    _, error = await pieces_until_error(await upstream.send(seed_request()))
    assert error is None
