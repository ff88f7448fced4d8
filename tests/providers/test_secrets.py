"""Canary credentials of every auth scheme (keys, api-key headers, exchanged IAM and Google
tokens, AWS and OCI signing keys) never reach a response, a log line or the store, even when
an upstream echoes them in its error."""

from __future__ import annotations

import json

import httpx
import pytest

from fakes.fake_clouds import CHAT_MODELS

from .conftest import PERSONALITY, Clouds

HELLO = [{"role": "user", "content": "Say hello."}]
SCHEMES = ["openai", "azure", "anthropic", "gemini", "gemini-oauth", "vertexai", "bedrock", "watsonx", "oci",
           "databricks"]


def _chat(clouds: Clouds, provider_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
    model = f"{provider_id}/{CHAT_MODELS[PERSONALITY[provider_id]]}"
    return httpx.post(clouds.base_url + "/v1/chat/completions", headers=headers,
                      json={"model": model, "messages": HELLO}, timeout=30)


def _own_secrets(clouds: Clouds, provider_id: str) -> list[str]:
    """What the upstream of ``provider_id`` could echo: the credential it was sent or the one behind it."""
    fake, creds, name = clouds.fake, clouds.creds, PERSONALITY[provider_id]
    sent = fake.seen(name)[-1].headers.get("authorization", "").removeprefix("Bearer ")
    if provider_id in ("gemini-oauth", "vertexai"):
        return [sent]  # the exchanged access token
    if provider_id == "watsonx":
        return [creds.key("watsonx"), sent]
    if provider_id == "bedrock":
        return [creds.aws_secret_key]
    if provider_id == "oci":
        return []  # a signature proves the key without carrying it: nothing an upstream could echo
    return [creds.key(name)]


def _all_secrets(clouds: Clouds) -> list[str]:
    fake = clouds.fake
    return [*clouds.creds.canaries(), *fake.iam_tokens, *fake.google_tokens]


@pytest.mark.parametrize("provider_id", [s for s in SCHEMES if s != "oci"])
def test_an_upstream_error_echoing_every_credential_passes_none_on(clouds: Clouds, provider_id: str) -> None:
    assert _chat(clouds, provider_id).status_code == 200  # the credentials work (and tokens were issued)
    secrets = _own_secrets(clouds, provider_id)
    clouds.fake.fail_next(PERSONALITY[provider_id], 403, "refused: " + " ".join(secrets))
    response = _chat(clouds, provider_id)
    assert response.status_code == 403
    assert "refused:" in response.json()["error"]["message"]
    for secret in secrets:
        assert secret not in response.text, provider_id


def test_a_401_drops_the_exchanged_token_and_the_next_call_exchanges_again(clouds: Clouds) -> None:
    assert _chat(clouds, "watsonx").status_code == 200
    before = clouds.fake.token_exchanges["iam"]
    clouds.fake.fail_next("watsonx", 401, "token expired")
    assert _chat(clouds, "watsonx").status_code == 401
    assert _chat(clouds, "watsonx").status_code == 200
    assert clouds.fake.token_exchanges["iam"] == before + 1


def test_per_request_keys_of_each_scheme(clouds: Clouds) -> None:
    bedrock_key = clouds.creds.key("bedrock")
    header = {"X-LlamaStack-Provider-Data": json.dumps({"aws_bearer_token_bedrock": bedrock_key})}
    assert _chat(clouds, "bedrock", header).status_code == 200
    assert clouds.fake.seen("bedrock")[-1].headers["authorization"] == f"Bearer {bedrock_key}"
    wrong = {"X-LlamaStack-Provider-Data": json.dumps({"watsonx_api_key": "canary-not-a-watsonx-key-0001"})}
    refused = _chat(clouds, "watsonx", wrong)
    assert refused.status_code == 401 and "IBM IAM refused" in refused.text
    assert "canary-not-a-watsonx-key-0001" not in refused.text


def test_no_credential_in_logs_providers_or_store(clouds: Clouds) -> None:
    for provider_id in SCHEMES:
        _chat(clouds, provider_id)
    shown = httpx.get(clouds.base_url + "/v1/providers").text
    log = clouds.server.log()
    for secret in _all_secrets(clouds):
        assert secret not in shown and secret not in log
    for path in (clouds.home / "store").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in _all_secrets(clouds):
                assert secret.encode() not in data, path
