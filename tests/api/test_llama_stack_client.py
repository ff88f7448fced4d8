"""llama-stack-client, unchanged, against relaystack: models, providers, inspect, inference."""

from __future__ import annotations

import pytest
from llama_stack_client import LlamaStackClient, NotFoundError

from support.stack import CHAT_MODEL, EMBED_MODEL, Stack


@pytest.fixture
def lsc(stack: Stack) -> LlamaStackClient:
    return LlamaStackClient(base_url=stack.base_url, max_retries=0)


def test_models_list_has_llama_stack_fields(lsc: LlamaStackClient) -> None:
    models = {m.identifier: m for m in lsc.models.list()}
    chat, embed = models[CHAT_MODEL], models[EMBED_MODEL]
    assert chat.provider_id == "together" and chat.model_type == "llm"
    assert chat.provider_resource_id == "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
    assert embed.model_type == "embedding" and embed.metadata["embedding_dimension"] == 768
    # discovery from the fake's bare-array /models: the known embedding model with its metadata,
    # and no image or rerank model
    listed = models["together/BAAI/bge-large-en-v1.5"]
    assert listed.model_type == "embedding" and listed.metadata["embedding_dimension"] == 1024
    assert not any("FLUX" in i or "rerank" in i.lower() for i in models)


def test_openai_models_route_of_the_client(lsc: LlamaStackClient) -> None:
    ids = [m.id for m in lsc.models.openai.list()]
    assert CHAT_MODEL in ids


def test_register_get_and_unregister_a_model(lsc: LlamaStackClient) -> None:
    model = lsc.models.register(model_id="my-alias", provider_id="together",
                                provider_model_id="meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", model_type="llm")
    assert model.identifier == "my-alias"
    assert lsc.models.retrieve("my-alias").provider_resource_id == "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"
    response = lsc.chat.completions.create(model="my-alias", messages=[{"role": "user", "content": "hi"}])
    assert response.model == "my-alias"
    lsc.models.unregister("my-alias")
    with pytest.raises(NotFoundError):
        lsc.models.retrieve("my-alias")


def test_register_embedding_without_dimension_is_refused(lsc: LlamaStackClient) -> None:
    from llama_stack_client import BadRequestError

    with pytest.raises(BadRequestError):
        lsc.models.register(model_id="emb", provider_id="together", model_type="embedding")


def test_providers_and_inspect(lsc: LlamaStackClient) -> None:
    providers = lsc.providers.list()
    assert [(p.api, p.provider_id, p.provider_type) for p in providers] == [("inference", "together",
                                                                             "remote::together")]
    assert lsc.providers.retrieve("together").config["api_key"] == "********"
    assert lsc.inspect.health().status == "OK"
    assert lsc.inspect.version().version


def test_chat_stream_and_embeddings_through_the_client(lsc: LlamaStackClient) -> None:
    chunks = list(lsc.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}],
                                              stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    embeddings = lsc.embeddings.create(model=EMBED_MODEL, input=["a", "b"])
    assert [len(d.embedding) for d in embeddings.data] == [768, 768]
    assert embeddings.model == EMBED_MODEL
