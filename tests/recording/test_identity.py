"""Request identity: llama-stack's hash and URL, and the tolerant replay match key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relaystack.recording.identity import (
    canonical_body,
    identity_of_record,
    identity_of_request,
    llama_hash,
    match_key,
    normalize_path,
)
from relaystack.upstream.base import UpstreamRequest

from .conftest import SHARED_FILES, TOGETHER, get, post, request_of


def test_there_are_fifteen_shared_recordings() -> None:
    assert len(SHARED_FILES) == 15


@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.stem)
def test_hash_of_the_recorded_request_reproduces_the_file_name(path: Path) -> None:
    identity = identity_of_record(json.loads(path.read_text())["request"])
    assert identity.short_hash == path.stem


@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.stem)
def test_our_wire_request_gets_llama_stacks_url_endpoint_and_method(path: Path) -> None:
    recorded = json.loads(path.read_text())["request"]
    identity = identity_of_request(request_of(path))
    assert identity.url == recorded["url"]  # .../v1/v1/... as llama-stack writes it
    assert identity.endpoint == recorded["endpoint"]
    assert identity.method == recorded["method"]
    assert identity.model == recorded["model"]


@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.stem)
def test_a_call_we_record_gets_the_name_llama_stack_looks_for(path: Path) -> None:
    recorded = json.loads(path.read_text())["request"]
    identity = identity_of_request(request_of(path))
    if "extra_body" in recorded["body"]:
        # llama-stack hashed an SDK kwarg (extra_body={}) that never reaches the wire; we
        # cannot know it was there, so only the match key (not the name) agrees
        assert identity.short_hash != path.stem
        assert identity.match_key() == identity_of_record(recorded).match_key()
    else:
        assert identity.short_hash == path.stem


def test_llama_hash_is_sha256_of_sorted_json() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    import hashlib

    expected = hashlib.sha256(
        json.dumps({"method": "POST", "endpoint": "/v1/v1/chat/completions", "body": body}, sort_keys=True).encode()
    ).hexdigest()
    assert llama_hash("post", "/v1/v1/chat/completions", body) == expected


def test_model_listing_is_identified_like_the_sdks_models_list() -> None:
    identity = identity_of_request(get(TOGETHER, "/models", {"Authorization": "Bearer k"}))
    assert (identity.method, identity.endpoint, identity.body, identity.model) == ("POST", "/v1/models", {}, "")
    assert identity.url == "https://api.together.xyz/v1/v1/models"


def test_url_loses_credentials_and_query_but_keeps_host_and_port() -> None:
    request = UpstreamRequest("POST", "http://user:pw@127.0.0.1:8080/openai/v1/embeddings?key=secret", {},
                              json={"model": "e", "input": "x"})
    identity = identity_of_request(request)
    assert identity.url == "http://127.0.0.1:8080/openai/v1/v1/embeddings"
    assert "secret" not in identity.url and "pw" not in identity.url


def test_a_base_url_without_v1_still_gets_the_v1_endpoint() -> None:
    identity = identity_of_request(post("http://h/api", "/chat/completions", {"model": "m"}))
    assert identity.path == "/api/v1/chat/completions"
    assert normalize_path(identity.path) == "/api/v1/chat/completions"


def test_unknown_endpoints_keep_their_method_and_path() -> None:
    identity = identity_of_request(UpstreamRequest("DELETE", "http://h/v1/files/abc", {}))
    assert (identity.method, identity.path, identity.endpoint) == ("DELETE", "/v1/files/abc", "/v1/files/abc")


def test_body_is_parsed_from_bytes_when_json_is_missing() -> None:
    request = UpstreamRequest("POST", TOGETHER + "/chat/completions", {}, body=b'{"model": "m", "stream": true}')
    assert identity_of_request(request).body == {"model": "m", "stream": True}


# -- the match key -----------------------------------------------------------------------------

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.7, "stream": False}


def test_key_order_does_not_matter() -> None:
    reordered = {"stream": False, "temperature": 0.7, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert match_key("POST", "/v1/chat/completions", BODY) == match_key("POST", "/v1/chat/completions", reordered)


def test_float_noise_does_not_matter_but_real_changes_do() -> None:
    noisy = {**BODY, "temperature": 0.70000001}
    changed = {**BODY, "temperature": 0.8}
    key = match_key("POST", "/v1/chat/completions", BODY)
    assert match_key("POST", "/v1/chat/completions", noisy) == key
    assert match_key("POST", "/v1/chat/completions", changed) != key


def test_integral_floats_equal_ints() -> None:
    assert canonical_body({"temperature": 1.0, "top_p": 1}) == canonical_body({"temperature": 1, "top_p": 1.0})


def test_repeated_v1_in_the_path_does_not_matter() -> None:
    assert match_key("POST", "/v1/v1/chat/completions", BODY) == match_key("POST", "/v1/chat/completions", BODY)
    assert normalize_path("/v1/v1/v1/models") == "/v1/models"
    assert normalize_path("/v10/v1/x") == "/v10/v1/x"


def test_empty_extra_body_is_ignored_and_a_full_one_is_merged_like_the_sdk() -> None:
    wire = {"model": "m", "prompt": "p"}
    assert canonical_body({**wire, "extra_body": {}}) == canonical_body(wire)
    assert canonical_body({**wire, "extra_body": {"top_k": 5}}) == canonical_body({**wire, "top_k": 5})


def test_content_changes_change_the_key() -> None:
    other = {**BODY, "messages": [{"role": "user", "content": "hello"}]}
    assert match_key("POST", "/v1/chat/completions", BODY) != match_key("POST", "/v1/chat/completions", other)
    assert match_key("POST", "/v1/chat/completions", BODY) != match_key("POST", "/v1/completions", BODY)


def test_host_is_not_part_of_the_match() -> None:
    a = identity_of_request(post("https://api.together.xyz/v1", "/chat/completions", BODY))
    b = identity_of_request(post("http://127.0.0.1:9999/v1", "/chat/completions", BODY))
    assert a.match_key() == b.match_key()
    assert a.hash == b.hash  # llama-stack drops the host too
