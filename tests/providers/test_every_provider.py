"""Every remote provider type, end to end: a llama-stack run.yaml naming them all starts
unchanged, and chat, streamed chat and embeddings go through ``relaystack run`` with the
official OpenAI SDK to a fake that checks each API's auth, URL layout and body rules."""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI

from fakes.fake_clouds import CHAT_MODELS, EMBEDDING_MODELS
from relaystack.providers.catalog import CATALOG

from .conftest import PERSONALITY, Clouds

HELLO = [{"role": "user", "content": "Say hello."}]
EMBEDDERS = [pid for pid in PERSONALITY if PERSONALITY[pid] in EMBEDDING_MODELS and pid != "gemini-oauth"]


@pytest.fixture(scope="module")
def client(clouds: Clouds) -> OpenAI:
    return OpenAI(base_url=clouds.base_url + "/v1", api_key="unused", max_retries=0)


def _model(provider_id: str) -> str:
    return f"{provider_id}/{CHAT_MODELS[PERSONALITY[provider_id]]}"


def test_the_run_yaml_names_every_remote_provider_type_and_starts(clouds: Clouds) -> None:
    listed = httpx.get(clouds.base_url + "/v1/providers").json()["data"]
    types = {p["provider_type"] for p in listed}
    remote = {t for t, row in CATALOG.items() if row.remote and t not in ("remote::together", "remote::ollama")}
    assert remote <= types, remote - types
    assert "together" not in {p["provider_id"] for p in listed}  # disabled by its empty provider_id


@pytest.mark.parametrize("provider_id", sorted(PERSONALITY))
def test_chat(client: OpenAI, clouds: Clouds, provider_id: str) -> None:
    name = PERSONALITY[provider_id]
    response = client.chat.completions.create(model=_model(provider_id), messages=HELLO)  # type: ignore[arg-type]
    assert response.choices[0].message.content == f"Hello from {name}!"
    assert response.model == _model(provider_id)
    assert clouds.fake.seen(name)[-1].method == "POST"


@pytest.mark.parametrize("provider_id", sorted(PERSONALITY))
def test_streamed_chat(client: OpenAI, provider_id: str) -> None:
    name = PERSONALITY[provider_id]
    stream = client.chat.completions.create(model=_model(provider_id), messages=HELLO, stream=True)  # type: ignore[arg-type]
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Hello from {name}!"
    assert {c.model for c in chunks} == {_model(provider_id)}
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


@pytest.mark.parametrize("provider_id", sorted(EMBEDDERS))
def test_embeddings(client: OpenAI, provider_id: str) -> None:
    model, dimension = EMBEDDING_MODELS[PERSONALITY[provider_id]]
    response = client.embeddings.create(model=f"{provider_id}/{model}", input=["hello", "world"])
    assert [len(d.embedding) for d in response.data] == [dimension, dimension]
    assert response.model == f"{provider_id}/{model}"
    assert response.usage.total_tokens >= 0


@pytest.mark.parametrize("provider_id", sorted(EMBEDDERS))
def test_listed_embedding_models_are_typed_with_their_dimension(clouds: Clouds, provider_id: str) -> None:
    model, dimension = EMBEDDING_MODELS[PERSONALITY[provider_id]]
    models = {m["id"]: m for m in httpx.get(clouds.base_url + "/v1/models").json()["data"]}
    entry = models.get(f"{provider_id}/{model}")  # (llama-cpp-server and runpod: declared in the run.yaml)
    assert entry is not None and entry["model_type"] == "embedding"
    if provider_id == "vllm":  # typed by its name (llama-stack's rule); vLLM's listing gives no dimension
        assert entry["metadata"] == {"context_length": 8192}
        return
    assert entry["metadata"]["embedding_dimension"] == dimension


# Bedrock's and watsonx's APIs refuse stream_options (dropped): their streams carry no usage chunk
USAGE_STREAMERS = sorted(pid for pid in PERSONALITY if pid not in ("bedrock", "watsonx"))


@pytest.mark.parametrize("provider_id", USAGE_STREAMERS)
def test_usage_is_reported_in_answers_and_in_streams_that_ask(client: OpenAI, provider_id: str) -> None:
    """Every provider (Vertex AI included) reports usage as OpenAI does."""
    answer = client.chat.completions.create(model=_model(provider_id), messages=HELLO)  # type: ignore[arg-type]
    assert answer.usage is not None and answer.usage.total_tokens == 9
    chunks = list(client.chat.completions.create(model=_model(provider_id), messages=HELLO, stream=True,  # type: ignore[arg-type]
                                                 stream_options={"include_usage": True}))
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1] and chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 9


def test_usage_is_sent_once_as_openai_does_even_by_gemini(client: OpenAI) -> None:
    for provider_id in ("openai", "gemini"):
        chunks = list(client.chat.completions.create(model=_model(provider_id), messages=HELLO, stream=True,  # type: ignore[arg-type]
                                                     stream_options={"include_usage": True}))
        with_usage = [c for c in chunks if c.usage is not None]
        assert len(with_usage) == 1 and with_usage[0].choices == [] and with_usage[0] is chunks[-1], provider_id
        assert with_usage[0].usage is not None and with_usage[0].usage.total_tokens == 9
    unasked = list(client.chat.completions.create(model=_model("gemini"), messages=HELLO, stream=True))  # type: ignore[arg-type]
    assert all(c.usage is None for c in unasked)


def test_stream_options_are_dropped_for_bedrock_and_watsonx(client: OpenAI, clouds: Clouds) -> None:
    for provider_id in ("bedrock", "watsonx"):
        chunks = list(client.chat.completions.create(model=_model(provider_id), messages=HELLO, stream=True,  # type: ignore[arg-type]
                                                     stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Hello")
        assert "stream_options" not in clouds.fake.seen(PERSONALITY[provider_id])[-1].json


def test_completions_where_the_api_has_them(client: OpenAI, clouds: Clouds) -> None:
    for provider_id in ("openai", "fireworks", "vllm", "nvidia", "llama-cpp-server", "watsonx"):
        response = client.completions.create(model=_model(provider_id), prompt="Say")
        assert response.choices[0].text == f"Hello from {PERSONALITY[provider_id]}!"
        assert response.model == _model(provider_id)
    streamed = list(client.completions.create(model=_model("watsonx"), prompt="Say", stream=True, max_tokens=2))
    assert "".join(c.choices[0].text for c in streamed) == "Hello from"
    assert streamed[-1].choices[0].finish_reason == "length" and {c.model for c in streamed} == {_model("watsonx")}
    sent = clouds.fake.seen("watsonx")[-1]
    assert sent.path == "/watsonx/ml/v1/text/generation_stream" and sent.json["parameters"]["max_new_tokens"] == 2


def test_what_a_provider_cannot_do_is_a_400_before_any_upstream_call(clouds: Clouds) -> None:
    cases = [
        ("/v1/embeddings", {"model": "bedrock/amazon.titan-embed-text-v2:0", "input": "x"}, "bedrock"),
        ("/v1/completions", {"model": _model("anthropic"), "prompt": "x"}, "anthropic"),
        ("/v1/completions", {"model": _model("gemini"), "prompt": "x"}, "gemini"),
        ("/v1/completions", {"model": _model("llama-openai-compat"), "prompt": "x"}, "llama-openai-compat"),
        ("/v1/chat/completions", {"model": _model("sambanova"), "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}, "sambanova"),
    ]
    for path, body, name in cases:
        before = len(clouds.fake.seen(name))
        response = httpx.post(clouds.base_url + path, json=body)
        assert response.status_code == 400, (name, response.text)
        error = response.json()["error"]
        assert error["code"] in ("unsupported_operation", "unsupported_parameter") and name in error["message"].lower()
        assert len(clouds.fake.seen(name)) == before


def test_the_headers_each_api_wants(clouds: Clouds) -> None:
    fake, creds = clouds.fake, clouds.creds
    assert fake.seen("azure")[-1].headers["api-key"] == creds.key("azure")
    assert fake.seen("bedrock")[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert fake.seen("oci")[-1].headers["compartmentid"] == creds.oci_compartment
    assert fake.seen("oci")[-1].headers["authorization"].startswith("Signature ")
    for keyless in ("vllm", "llama-cpp-server", "nvidia", "openai-compat"):
        assert all("authorization" not in r.headers for r in fake.seen(keyless)), keyless
    watsonx = fake.seen("watsonx")[-1]
    assert watsonx.query["version"] and watsonx.headers["authorization"].removeprefix("Bearer ") in fake.iam_tokens


def test_token_exchanges_are_cached(clouds: Clouds, client: OpenAI) -> None:
    for _ in range(3):
        client.chat.completions.create(model=_model("watsonx"), messages=HELLO)
        client.chat.completions.create(model=_model("vertexai"), messages=HELLO)
    assert clouds.fake.token_exchanges["iam"] == 1
    assert clouds.fake.token_exchanges["google"] <= 2  # vertexai and gemini-oauth share nothing: one each
