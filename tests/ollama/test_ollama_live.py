"""remote::ollama end to end: `relaystack run` + the OpenAI SDK against a fake Ollama on 127.0.0.1."""

from __future__ import annotations

import base64
import json

import httpx
import openai
import pytest

from .conftest import OllamaStack

MODEL = "ollama/llama3.2:3b-instruct-fp16"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00fake-image-bytes" * 8


def test_models_come_from_api_tags_typed_and_with_the_latest_alias(ollama: OllamaStack) -> None:
    models = {m["identifier"]: m for m in httpx.get(f"{ollama.server.base_url}/v1/models").json()["data"]}
    assert models[MODEL]["model_type"] == "llm"
    assert models["ollama/all-minilm:l6-v2"]["model_type"] == "embedding"
    assert models["ollama/all-minilm:l6-v2"]["metadata"]["embedding_dimension"] == 384
    assert models["ollama/nomic-embed-text:v1.5"]["model_type"] == "embedding"  # a nomic-bert family
    # Ollama's rule: no tag means :latest
    assert models["ollama/llama3.2"]["provider_resource_id"] == "llama3.2:latest"


def test_chat_json_and_stream_are_keyless(ollama: OllamaStack) -> None:
    client = ollama.client()
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi there"}])
    assert answer.choices[0].message.content == "You said: hi there"
    assert answer.model == MODEL
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a b c"}],
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: a b c"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    sent = ollama.fake.received("/v1/chat/completions")
    assert [r.json["model"] for r in sent] == ["llama3.2:3b-instruct-fp16"] * 2
    assert {r.headers.get("authorization") for r in sent} == {None}  # keyless: no Authorization header at all


def test_completions_and_embeddings(ollama: OllamaStack) -> None:
    client = ollama.client()
    assert client.completions.create(model=MODEL, prompt="Roses are").choices[0].text == "completed: Roses are"
    vectors = client.embeddings.create(model="ollama/all-minilm:l6-v2", input=["one", "two"],
                                       encoding_format="float")
    assert [len(d.embedding) for d in vectors.data] == [384, 384]


def test_a_bare_name_is_sent_as_its_latest_tag(ollama: OllamaStack) -> None:
    ollama.client().chat.completions.create(model="ollama/llama3.2", messages=[{"role": "user", "content": "x"}])
    assert ollama.fake.received("/v1/chat/completions")[-1].json["model"] == "llama3.2:latest"


def test_image_links_are_downloaded_and_sent_as_base64(ollama: OllamaStack) -> None:
    url = ollama.fake.serve_file("dog.png", "image/png", PNG)
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                            {"type": "text", "text": "what is it"}]}
    answer = ollama.client().chat.completions.create(model="ollama/llama3.2-vision:11b", messages=[message])
    assert answer.choices[0].message.content == f"You said: what is it (and {len(PNG)} image bytes)"
    [sent] = ollama.fake.received("/v1/chat/completions")
    image = sent.json["messages"][0]["content"][0]["image_url"]["url"]
    assert image == "data:image/png;base64," + base64.b64encode(PNG).decode()
    # the stored completion keeps what the client sent, not the downloaded bytes
    stored = httpx.get(f"{ollama.server.base_url}/v1/chat/completions/{answer.id}").json()
    assert stored["input_messages"][0]["content"][0]["image_url"]["url"] == url


def test_an_image_that_cannot_be_fetched_is_a_400_naming_the_part(ollama: OllamaStack) -> None:
    missing = f"{ollama.fake.root}/files/none.png?sig=s3cr3t"
    message = {"role": "user", "content": [{"type": "text", "text": "look"},
                                            {"type": "image_url", "image_url": {"url": missing}}]}
    with pytest.raises(openai.BadRequestError) as caught:
        ollama.client().chat.completions.create(model="ollama/llama3.2-vision:11b", messages=[message])
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "messages[0].content[1].image_url.url"
    assert "answered 404" in error["message"] and "s3cr3t" not in error["message"]
    assert ollama.fake.received("/v1/chat/completions") == []


def test_invalid_base64_is_the_upstreams_400(ollama: OllamaStack) -> None:
    message = {"role": "user", "content": [{"type": "image_url",
                                            "image_url": {"url": "data:image/png;base64,not_valid_base64_data!!!"}}]}
    with pytest.raises(openai.BadRequestError, match="invalid image input"):
        ollama.client().chat.completions.create(model=MODEL, messages=[message])


def test_n_above_one_is_refused_before_any_upstream_call(ollama: OllamaStack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ollama.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], n=2)
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "n"
    assert ollama.fake.received("/v1/chat/completions") == []


def test_tool_choice_none_sends_no_tools(ollama: OllamaStack) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    answer = ollama.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=[tool], tool_choice="none")
    assert answer.choices[0].message.tool_calls in (None, [])
    [sent] = ollama.fake.received("/v1/chat/completions")
    assert "tools" not in sent.json and "tool_choice" not in sent.json
    ollama.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], tools=[tool])
    assert ollama.fake.received("/v1/chat/completions")[-1].json["tools"] == [tool]


def test_a_model_that_is_not_pulled_is_a_404_naming_what_is(ollama: OllamaStack) -> None:
    with pytest.raises(openai.NotFoundError, match=r"llama3\.2:latest"):
        ollama.client().chat.completions.create(model="ollama/mistral:7b", messages=[{"role": "user", "content": "x"}])


def test_health_probes_never_call_ollama_and_provider_health_asks_api_ps(ollama: OllamaStack) -> None:
    base = ollama.server.base_url
    for _ in range(5):  # a load balancer's probes: answered from what relaystack knows, like any provider's
        health = httpx.get(f"{base}/v1/health").json()
        assert health["ready"] is True
        assert health["providers"]["ollama"]["status"] == "OK"
        assert health["providers"]["ollama"]["last_discovery"]["state"] == "ok"  # its /api/tags at start-up
    assert ollama.fake.received("/api/ps") == []
    # llama-stack's provider health (GET /v1/providers) asks Ollama itself
    providers = httpx.get(f"{base}/v1/providers").json()["data"]
    assert providers[0]["provider_type"] == "remote::ollama" and providers[0]["health"] == {"status": "OK"}
    ollama.fake.fail_next(500, path="/api/ps")
    assert httpx.get(f"{base}/v1/providers/ollama").json()["health"]["status"] == "Error"
    assert len(ollama.fake.received("/api/ps")) == 2
    # an Ollama that fails shows in /v1/health as any provider does: by its last request's outcome
    ollama.fake.fail_next(500, path="/v1/chat/completions")
    with pytest.raises(openai.InternalServerError):
        ollama.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    health = httpx.get(f"{base}/v1/health").json()["providers"]["ollama"]
    assert health["outcome"] == "degraded" and health["last_request"]["status"] == 500
    assert len(ollama.fake.received("/api/ps")) == 2


def test_the_test_id_never_reaches_ollama(ollama: OllamaStack) -> None:
    header = json.dumps({"__test_id": "tests/x.py::t", "other": "v"})
    ollama.client(**{"X-LlamaStack-Provider-Data": header}).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}])
    [sent] = ollama.fake.received("/v1/chat/completions")
    assert "__test_id" not in sent.body.decode() and "tests/x.py" not in json.dumps(sent.headers)
