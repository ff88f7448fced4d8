"""Recording every provider type's traffic holds no credential (tokens and signatures included),
and replaying it needs no key at all: models are listed from the recorded listings."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from fakes.cloud_creds import CloudCreds
from fakes.fake_clouds import CHAT_MODELS, EMBEDDING_MODELS, FakeClouds
from support.server import start_server, write_config

from .conftest import PERSONALITY, llama_stack_run_yaml, server_env

RECORDED = ["openai", "azure", "gemini", "gemini-oauth", "vertexai", "bedrock", "watsonx", "oci", "vllm", "nvidia",
            "databricks", "anthropic"]
HELLO = [{"role": "user", "content": "Say hello."}]


def _exercise(client: OpenAI) -> dict[str, str]:
    answers = {}
    for provider_id in RECORDED:
        model = f"{provider_id}/{CHAT_MODELS[PERSONALITY[provider_id]]}"
        answers[provider_id] = client.chat.completions.create(model=model, messages=HELLO).choices[0].message.content
        # (watsonx's streams end without [DONE]: recorded and replayed as they came)
        streamed = client.chat.completions.create(model=model, messages=HELLO, stream=True)  # type: ignore[arg-type]
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == answers[provider_id]
    # watsonx's text generation stream: other events than OpenAI's chunks, and no [DONE] either
    generated = list(client.completions.create(model=f"watsonx/{CHAT_MODELS['watsonx']}", prompt="Say",
                                               stream=True, max_tokens=2))
    answers["watsonx-generation"] = "".join(c.choices[0].text for c in generated)
    assert answers["watsonx-generation"] == "Hello from" and generated[-1].choices[0].finish_reason == "length"
    for provider_id in RECORDED:
        if PERSONALITY[provider_id] in EMBEDDING_MODELS and provider_id != "gemini-oauth":
            embed = EMBEDDING_MODELS[PERSONALITY[provider_id]][0]
            client.embeddings.create(model=f"{provider_id}/{embed}", input="hello")
    return answers


def test_record_then_replay_without_any_key(fake_clouds: FakeClouds, cloud_creds: CloudCreds,
                                            tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    config = write_config(tmp_path / "run.yaml", llama_stack_run_yaml(fake_clouds, cloud_creds, tmp_path))
    google = cloud_creds.write_google_service_account(tmp_path, fake_clouds.root + "/google/token")
    recorder = start_server(config, home=tmp_path / "record", env=server_env(cloud_creds, google),
                            args=["--record-mode", "record", "--recordings", str(recordings)])
    try:
        client = OpenAI(base_url=recorder.base_url + "/v1", api_key="unused", max_retries=0)
        recorded_answers = _exercise(client)
        recorded_models = {m["id"] for m in httpx.get(recorder.base_url + "/v1/models").json()["data"]}
    finally:
        recorder.stop()
    files = [p for p in recordings.rglob("*.json")]
    assert len(files) >= 2 * len(RECORDED)
    secrets = [*cloud_creds.canaries(), *fake_clouds.iam_tokens, *fake_clouds.google_tokens]
    for path in files:
        text = path.read_text()
        for secret in secrets:
            assert secret not in text, path
        assert "AWS4-HMAC-SHA256" not in text and 'Signature version="1"' not in text

    seen_before = len(fake_clouds.requests)
    replayer = start_server(config, home=tmp_path / "replay", env={},  # no key, no credentials at all
                            args=["--record-mode", "replay", "--recordings", str(recordings)])
    try:
        client = OpenAI(base_url=replayer.base_url + "/v1", api_key="unused", max_retries=0)
        replayed_models = {m["id"] for m in httpx.get(replayer.base_url + "/v1/models").json()["data"]}
        assert {"openai/gpt-4o-mini", "azure/gpt-4o-deployment", "watsonx/ibm/granite-3-8b-instruct",
                "databricks/databricks-meta-llama-3-3-70b-instruct", f"oci/{CHAT_MODELS['oci']}"} <= replayed_models
        # every recorded listing replays, OCI's ({"items": [...]}) included; Bedrock and Vertex AI list nothing
        assert replayed_models == recorded_models
        assert _exercise(client) == recorded_answers
        assert "has no API key" not in replayer.log()
    finally:
        replayer.stop()
    assert len(fake_clouds.requests) == seen_before  # replay never called an upstream


@pytest.mark.parametrize("provider_id", ["openai", "groq"])
def test_a_keyed_provider_without_a_key_warns_at_start_up(tmp_path: Path, provider_id: str) -> None:
    config = write_config(tmp_path / "run.yaml", {"version": 2, "providers": {"inference": [
        {"provider_id": provider_id, "provider_type": f"remote::{provider_id}", "config": {"api_key": ""}},
        {"provider_id": "vllm", "provider_type": "remote::vllm", "config": {"url": "http://127.0.0.1:9/v1"}},
    ]}})
    server = start_server(config, home=tmp_path)
    try:
        log = server.log()
        assert f"Provider '{provider_id}' (remote::{provider_id}) has no API key" in log
        assert "'vllm' (remote::vllm) has no API key" not in log
    finally:
        server.stop()
