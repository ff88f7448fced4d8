"""No credential ever reaches a recording: unit tests of redact.py and the canary test (X1)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from relaystack.recording import RecordingSettings, RecordMode, wrap_upstream
from relaystack.recording.codec import dump_document
from relaystack.recording.identity import identity_of_request
from relaystack.recording.redact import (
    REDACTED,
    SecretSet,
    find_secrets,
    is_key_like_name,
    secrets_of_request,
    variants,
)
from relaystack.recording.store import RecordingSecretError, RecordingStore
from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.http_client import HttpUpstream

from .conftest import SHARED_FILES, get, post
from .fake_upstream import MODEL, UpstreamState
from .test_replay import replayer

CANARY = "canary-Zq7Xv3Lm9Tr2Wp5Kd8"


@pytest.mark.parametrize("name", ["Authorization", "api-key", "X-Api-Key", "api_key", "together_api_key",
                                  "client_secret", "access_token", "Cookie", "set-cookie", "password"])
def test_key_like_names(name: str) -> None:
    assert is_key_like_name(name)


@pytest.mark.parametrize("name", ["max_tokens", "prompt_tokens", "token_id", "token", "logprobs", "keywords",
                                  "monkey", "secretary_name", "model"])
def test_not_key_like_names(name: str) -> None:
    assert not is_key_like_name(name)


def test_secrets_come_from_headers_provider_data_url_and_body() -> None:
    provider_data = json.dumps({"together_api_key": "pd-key-0123456789", "nested": {"deep": "pd-deep-0123456789"}})
    request = UpstreamRequest(
        "POST", "https://u:url-password-123@h/v1/chat/completions?key=query-key-0123456789",
        {"Authorization": "Bearer bearer-token-0123456789", "X-LlamaStack-Provider-Data": provider_data,
         "x-goog-api-key": "goog-key-0123456789", "Content-Type": "application/json"},
        json={"model": "m", "api_key": "body-key-0123456789", "max_tokens": 5},
    )
    found = set(secrets_of_request(request))
    assert {"Bearer bearer-token-0123456789", "bearer-token-0123456789", "pd-key-0123456789", "pd-deep-0123456789",
            "goog-key-0123456789", "url-password-123", "query-key-0123456789", "body-key-0123456789"} <= found
    assert "application/json" not in found and "m" not in found


def test_short_values_are_not_secrets() -> None:
    request = UpstreamRequest("POST", "http://h/v1/embeddings", {"Authorization": "Bearer x", "api-key": "short"})
    assert secrets_of_request(request) == ["Bearer x"]  # the whole header value, but never the lone "x"


@pytest.mark.parametrize("prefix", ["", "a", "ab", "abc"])
def test_base64_of_a_secret_is_found_at_any_alignment(prefix: str) -> None:
    encoded = base64.b64encode((prefix + CANARY + "tail").encode()).decode()
    assert any(v in encoded for v in variants(CANARY))
    assert CANARY not in SecretSet([CANARY]).scrub_text(encoded) and REDACTED in SecretSet([CANARY]).scrub_text(
        encoded)


def test_scrub_replaces_every_form_and_key_like_fields() -> None:
    secrets = SecretSet([CANARY])
    doc = {
        "content": f"raw {CANARY} json {json.dumps(CANARY)} url {quote(CANARY)} plus {quote_plus(CANARY)}",
        "api_key": "anything-at-all",
        "auth": {"client_secret": "s3cr3t-value", "note": "kept"},
        "schema": {"password": {"type": "string", "description": "The user's password"}},
        "shapes": "key sk-abcdefghijklmnop1234 and Bearer abcDEF1234567890xyz",
        "usage": {"max_tokens": 5, "prompt_tokens": 3},
        "logprobs": [{"token": "Hello", "logprob": -0.1}],
    }
    out = secrets.scrub(doc)
    assert CANARY not in json.dumps(out)
    assert out["api_key"] == REDACTED and out["auth"] == {"client_secret": REDACTED, "note": "kept"}
    assert out["schema"] == doc["schema"]  # a JSON-schema property named password is not a secret
    assert "sk-abc" not in out["shapes"] and "abcDEF1234567890xyz" not in out["shapes"]
    assert out["usage"] == doc["usage"] and out["logprobs"] == doc["logprobs"]


def test_prose_is_left_alone() -> None:
    text = "The bearer of this letter, Bearer instruments and ask-me-anything are fine."
    assert SecretSet().scrub_text(text) == text


def test_find_secrets_flags_headers_key_fields_and_shapes() -> None:
    doc = {"request": {"headers": {"Authorization": "Bearer abc"}, "body": {"api_key": "abcdefgh12345"}},
           "response": {"body": "here sk-0123456789abcdefXYZ"}}
    hits = find_secrets(json.dumps(doc))
    assert any("headers" in h for h in hits)
    assert any("api_key" in h for h in hits)
    assert any("key-shaped" in h for h in hits)
    assert all("0123456789abcdef" not in h and "abcdefgh12345" not in h for h in hits)  # never the value


@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.stem)
def test_the_shared_recordings_are_clean(path: Path) -> None:
    assert find_secrets(path.read_text()) == []


def test_the_persister_refuses_what_scrubbing_missed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SecretSet, "scrub", lambda self, obj: obj)  # a hole in scrubbing
    identity = identity_of_request(post("http://h/v1", "/chat/completions", {"model": "m"}))
    store = RecordingStore(tmp_path)
    with pytest.raises(RecordingSecretError, match="remain after scrubbing"):
        store.write(identity, {"body": {"leak": f"Bearer {CANARY}9"}, "is_streaming": False}, SecretSet([CANARY]))
    assert not (tmp_path / "responses").exists() or list((tmp_path / "responses").iterdir()) == []


# -- the canary test (reliability X1) ------------------------------------------------------------------

def canary_headers(n: int) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {CANARY}{n}a",
        "api-key": f"{CANARY}{n}b",
        "x-api-key": f"{CANARY}{n}c",
        "X-LlamaStack-Provider-Data": json.dumps({"together_api_key": f"{CANARY}{n}d",
                                                  "extra": {"nested_token": f"{CANARY}{n}e"}}),
        "Cookie": f"session={CANARY}{n}f",
    }


def forms_of(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    for prefix in (b"", b"x", b"xy"):
        encoded = base64.b64encode(prefix + secret.encode()).decode()
        forms.add(encoded[len(prefix) * 2 : len(encoded) - 4])  # a core that only the secret determines
    return {f for f in forms if len(f) >= 8}


def all_written_text(directory: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())


@pytest.mark.parametrize("mode", [RecordMode.RECORD, RecordMode.REPLAY, RecordMode.LIVE])
async def test_canaries_never_reach_any_written_file(
    mode: RecordMode, fake_upstream: tuple[UpstreamState, str], tmp_path: Path
) -> None:
    state, base = fake_upstream
    state.echo_credentials = True
    directory = tmp_path / "rec"
    directory.mkdir()
    live = HttpUpstream()
    # record first, so replay and live have something to run against
    recorder = wrap_upstream(live, RecordingSettings(RecordMode.RECORD, directory))
    upstream = recorder if mode is RecordMode.RECORD else (
        replayer(directory, used_log=tmp_path / "rec" / "used.txt") if mode is RecordMode.REPLAY
        else wrap_upstream(live, RecordingSettings(RecordMode.LIVE, directory)))
    try:
        requests = [
            post(base, "/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                             "stream": False}, canary_headers(1)),
            post(base, "/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                             "stream": True}, canary_headers(2)),
            get(base + "", "/models?key=" + quote(f"{CANARY}3q"), canary_headers(3)),
        ]
        for request in requests:
            await (await recorder.send(request)).read()
        if mode is not RecordMode.RECORD:
            for request in requests:
                await (await upstream.send(request)).read()
        state.fail_status = 401  # an error that echoes the key: passed through, never written
        await (await recorder.send(requests[0])).read()
    finally:
        await live.aclose()
    written = all_written_text(directory)
    assert len(list((directory / "responses").glob("*.json"))) == 3
    assert "creds: [REDACTED]" in written  # the echo really happened and was scrubbed
    secrets = [f"{CANARY}{n}{s}" for n in (1, 2, 3) for s in "abcdef"] + [f"{CANARY}3q"]
    for secret in secrets:
        for form in forms_of(secret):
            assert form not in written, f"a form of {secret} leaked"
    assert CANARY[:12] not in written
    for path in (directory / "responses").glob("*.json"):
        assert find_secrets(path.read_text()) == []
        assert json.loads(path.read_text())["request"]["headers"] == {}


def test_the_request_body_keeps_its_hash_when_it_has_no_secret() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    request = post("http://h/v1", "/chat/completions", body, canary_headers(9))
    identity = identity_of_request(request)
    assert SecretSet(secrets_of_request(request)).scrub(identity.body) == body
    text = dump_document(identity.to_record(), {"body": {}, "is_streaming": False})
    assert CANARY not in text
