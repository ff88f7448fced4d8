"""Auth schemes on the seam double: keys in headers or not at all, token exchange with caching
and refresh, and every credential of a call redacted from upstream errors (canaries)."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import orjson
import pytest
from provider_kit import call, chat_ok, make

from relaystack.errors import MissingApiKeyError, UpstreamError
from relaystack.providers.auth import HeaderAuth, TokenCache
from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.mock import MockResponse, MockUpstream

CANARY = "canary-key-5e1d3c2b1a0f9e8d7c6b"
HELLO = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def test_bearer_api_key_header_and_none() -> None:
    request = UpstreamRequest("POST", "http://x")
    await HeaderAuth().apply(request, "k1")
    await HeaderAuth("api-key", "").apply(request, "k2")
    assert request.headers == {"Authorization": "Bearer k1", "api-key": "k2"}
    bare = UpstreamRequest("POST", "http://x")
    await HeaderAuth().apply(bare, None)
    assert bare.headers == {}


async def test_a_keyless_provider_sends_no_authorization_header() -> None:
    for provider_type, config in (("remote::vllm", {"url": "http://h/v1"}),
                                  ("remote::llama-cpp-server", {}),
                                  ("remote::openai-compat", {"base_url": "http://h/v1"}),
                                  ("remote::nvidia", {"url": "http://nim:8000"})):
        provider, upstream = make(provider_type, config)
        await provider.chat_completion(HELLO, call(provider, "m"))
        assert "Authorization" not in upstream.last.headers, provider_type
        assert await provider.list_models() is not None  # discovery runs without a key


async def test_a_keyed_provider_without_a_key_refuses_before_any_call() -> None:
    provider, upstream = make("remote::groq", {})
    with pytest.raises(MissingApiKeyError) as caught:
        await provider.chat_completion(HELLO, call(provider, "m"))
    assert "GROQ_API_KEY" in caught.value.message and "groq_api_key" in caught.value.message
    assert upstream.requests == [] and await provider.list_models() is None


async def test_the_per_request_key_wins_and_both_are_declared_secrets() -> None:
    provider, upstream = make("remote::openai", {"api_key": "configured-key-123"})
    context = call(provider, "gpt-4o", provider_data={"openai_api_key": CANARY})
    await provider.chat_completion(HELLO, context)
    assert upstream.last.headers["Authorization"] == f"Bearer {CANARY}"
    assert set(provider.secrets(context)) == {"configured-key-123", CANARY}
    assert set(upstream.last.secrets) == {"configured-key-123", CANARY}


async def test_replaying_needs_no_credential_at_all() -> None:
    provider, upstream = make("remote::watsonx", {"project_id": "p"})
    provider.credentials_optional = True
    await provider.chat_completion(HELLO, call(provider, "ibm/granite"))
    assert "Authorization" not in upstream.last.headers and provider.tokens.exchanges == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_token_cache_exchanges_once_refreshes_before_expiry_and_after_a_drop() -> None:
    clock, exchanged = Clock(), []

    async def fetch(key: str) -> tuple[str, float]:
        await asyncio.sleep(0)
        exchanged.append(key)
        return f"token-{len(exchanged)}", 3600.0

    cache = TokenCache(fetch, margin_s=60, clock=clock)
    assert await asyncio.gather(*(cache.get("k") for _ in range(20))) == ["token-1"] * 20  # one flight
    clock.now += 3500
    assert await cache.get("k") == "token-1"
    clock.now += 50  # within the margin of expiry
    assert await cache.get("k") == "token-2"
    cache.drop("k")
    assert await cache.get("k") == "token-3"
    assert await cache.get("other") == "token-4" and exchanged == ["k", "k", "k", "other"]
    assert set(cache.tokens()) == {"token-3", "token-4"}


async def test_token_cache_is_bounded() -> None:
    async def fetch(key: str) -> tuple[str, float]:
        return "t-" + key, 3600.0

    cache = TokenCache(fetch, max_entries=3)
    for key in "abcde":
        await cache.get(key)
    assert set(cache.tokens()) == {"t-c", "t-d", "t-e"}


def _iam(requests: list[dict[str, str]], status: int = 200):  # type: ignore[no-untyped-def]
    def handler(request: UpstreamRequest) -> MockResponse:
        form = {k: v[0] for k, v in parse_qs((request.body or b"").decode()).items()}
        requests.append(form)
        if status != 200:
            return MockResponse.json({"errorCode": "BXNIM0415E", "errorMessage": f"No key {form['apikey']}"}, 400)
        return MockResponse.json({"access_token": f"iam-token-{len(requests)}-abcdef", "expires_in": 3600})
    return handler


async def test_watsonx_exchanges_the_key_at_iam_and_caches_the_token() -> None:
    provider, upstream = make("remote::watsonx", {"api_key": CANARY, "project_id": "p"})
    exchanges: list[dict[str, str]] = []
    provider.token_upstream = MockUpstream(_iam(exchanges))  # type: ignore[attr-defined]
    for _ in range(3):
        await provider.chat_completion(HELLO, call(provider, "ibm/granite"))
    assert exchanges == [{"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": CANARY}]
    assert upstream.last.headers["Authorization"] == "Bearer iam-token-1-abcdef"
    assert "iam-token-1-abcdef" in provider.secrets(None)


async def test_a_refused_iam_exchange_names_the_fix_and_not_the_key() -> None:
    provider, upstream = make("remote::watsonx", {"api_key": CANARY, "project_id": "p"})
    provider.token_upstream = MockUpstream(_iam([], status=400))  # type: ignore[attr-defined]
    with pytest.raises(UpstreamError) as caught:
        await provider.chat_completion(HELLO, call(provider, "ibm/granite"))
    assert caught.value.status_code == 401 and "IBM IAM refused" in caught.value.message
    assert CANARY not in caught.value.message and upstream.requests == []


def _echo(secret_of: object) -> object:
    def handler(request: UpstreamRequest) -> MockResponse:
        secret = secret_of(request) if callable(secret_of) else str(secret_of)
        body = {"error": {"message": f"bad credential {secret}", "type": f"t {secret}", "param": f"p {secret}",
                          "code": f"c {secret}"}}
        return MockResponse.json(body, 401)
    return handler


@pytest.mark.parametrize(("provider_type", "config", "sent"), [
    ("remote::openai", {"api_key": CANARY}, lambda r: r.headers["Authorization"][7:]),
    ("remote::azure", {"api_key": CANARY, "api_base": "https://res.openai.azure.com"}, lambda r: r.headers["api-key"]),
    ("remote::gemini", {"access_token": CANARY, "project": "p"}, lambda r: r.headers["Authorization"][7:]),
    ("remote::vertexai", {"access_token": CANARY, "project": "p"}, lambda r: r.headers["Authorization"][7:]),
    ("remote::bedrock", {"api_key": CANARY}, lambda r: r.headers["Authorization"][7:]),
])
async def test_an_echoed_credential_is_redacted_in_every_error_field(provider_type: str, config: dict[str, str],
                                                                     sent: object) -> None:
    provider, _ = make(provider_type, config, _echo(sent))
    with pytest.raises(UpstreamError) as caught:
        await provider.chat_completion(HELLO, call(provider, "m"))
    shown = orjson.dumps(caught.value.to_dict()).decode()
    assert CANARY not in shown and "bad credential ***" in shown


async def test_an_echoed_iam_token_is_redacted() -> None:
    provider, _ = make("remote::watsonx", {"api_key": CANARY, "project_id": "p"},
                       _echo(lambda r: r.headers["Authorization"][7:]))
    provider.token_upstream = MockUpstream(_iam([]))  # type: ignore[attr-defined]
    with pytest.raises(UpstreamError) as caught:
        await provider.chat_completion(HELLO, call(provider, "ibm/granite"))
    assert "iam-token-1-abcdef" not in caught.value.message and "***" in caught.value.message


async def test_sigv4_signs_what_is_sent_and_declares_the_secret_key() -> None:
    pytest.importorskip("botocore")
    from fakes.cloud_creds import CloudCreds, verify_sigv4

    creds = CloudCreds()
    provider, upstream = make("remote::bedrock", {
        "aws_access_key_id": creds.aws_access_key, "aws_secret_access_key": creds.aws_secret_key,
        "region_name": "us-west-2"}, chat_ok)
    await provider.chat_completion(HELLO, call(provider, "openai.gpt-oss-20b-1:0"))
    sent = upstream.last
    assert sent.url == "https://bedrock-mantle.us-west-2.api.aws/v1/chat/completions"
    headers = {k.lower(): v for k, v in sent.headers.items()}
    headers["host"] = "bedrock-mantle.us-west-2.api.aws"
    assert verify_sigv4("POST", sent.url, headers, sent.body or b"", creds, service="bedrock-mantle",
                        region="us-west-2") is None
    assert creds.aws_secret_key in sent.secrets and creds.aws_secret_key not in str(sent.headers)


async def test_oci_signs_with_the_sdk_signer_and_sends_the_compartment() -> None:
    pytest.importorskip("oci")
    import tempfile
    from pathlib import Path

    from fakes.cloud_creds import CloudCreds, verify_oci_signature

    creds = CloudCreds()
    config = creds.write_oci_config(Path(tempfile.mkdtemp()))
    provider, upstream = make("remote::oci", {
        "oci_auth_type": "config_file", "oci_config_file_path": str(config), "oci_region": "eu-frankfurt-1",
        "oci_compartment_id": creds.oci_compartment})
    await provider.chat_completion(HELLO, call(provider, "meta.llama-3.3-70b-instruct"))
    sent = upstream.last
    assert sent.url == ("https://inference.generativeai.eu-frankfurt-1.oci.oraclecloud.com"
                        "/20231130/actions/v1/chat/completions")
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert headers["compartmentid"] == creds.oci_compartment
    path = "/20231130/actions/v1/chat/completions"
    assert verify_oci_signature("POST", path, headers, sent.body or b"", creds) is None
    assert verify_oci_signature("POST", path, headers, (sent.body or b"") + b" ", creds) is not None
