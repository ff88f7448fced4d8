"""Rerank as llama-stack serves it (``POST /v1alpha/inference/rerank``), to vLLM and NVIDIA NIM."""

from __future__ import annotations

import httpx
import pytest
from llama_stack_client import LlamaStackClient

from fakes.fake_clouds import RERANK_MODELS

from .conftest import Clouds

ITEMS = ["the cat sat on the mat", "dogs bark at night", "a cat and a dog"]


@pytest.mark.parametrize("provider_id", ["vllm", "nvidia"])
def test_rerank_answers_best_first(clouds: Clouds, provider_id: str) -> None:
    model = f"{provider_id}/{RERANK_MODELS[provider_id]}"
    response = httpx.post(clouds.base_url + "/v1alpha/inference/rerank",
                          json={"model": model, "query": "cat dog", "items": ITEMS, "max_num_results": 2})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["index"] for d in data] == [2, 0]
    assert data[0]["relevance_score"] > data[1]["relevance_score"]
    sent = clouds.fake.seen(provider_id)[-1]
    if provider_id == "vllm":
        assert sent.path == "/vllm/rerank" and sent.json["documents"] == ITEMS and sent.json["top_n"] == 2
    else:
        assert sent.path == "/nvidia/v1/ranking" and sent.json["passages"][0] == {"text": ITEMS[0]}
        assert sent.json["query"] == {"text": "cat dog"}


def test_rerank_models_are_listed_with_their_type(clouds: Clouds) -> None:
    models = {m["id"]: m for m in httpx.get(clouds.base_url + "/v1/models").json()["data"]}
    assert models["vllm/" + RERANK_MODELS["vllm"]]["model_type"] == "rerank"


def test_llama_stack_client_reranks_with_text_parts(clouds: Clouds) -> None:
    client = LlamaStackClient(base_url=clouds.base_url, max_retries=0)
    ranked = client.inference.rerank(
        model="vllm/" + RERANK_MODELS["vllm"], query={"type": "text", "text": "dogs"},
        items=[{"type": "text", "text": t} for t in ITEMS],
    )
    assert ranked[0].index == 1


def test_rerank_refusals(clouds: Clouds) -> None:
    url = clouds.base_url + "/v1alpha/inference/rerank"
    chat_model = "openai/gpt-4o-mini"
    cases = [
        ({"model": chat_model, "query": "q", "items": ["a"]}, "model_type_mismatch"),
        ({"model": "vllm/" + RERANK_MODELS["vllm"], "query": "q", "items": []}, "invalid_value"),
        ({"model": "vllm/" + RERANK_MODELS["vllm"], "query": 3, "items": ["a"]}, "invalid_value"),
        ({"model": "vllm/" + RERANK_MODELS["vllm"], "query": "q", "items": ["a"], "max_num_results": 0},
         "invalid_value"),
        ({"model": "vllm/" + RERANK_MODELS["vllm"], "query": {"type": "image_url", "image_url": {"url": "x"}},
          "items": ["a"]}, "unsupported_parameter"),
        ({"model": "bedrock/cohere.rerank-v3-5:0", "query": "q", "items": ["a"]}, "unsupported_operation"),
    ]
    for body, code in cases:
        response = httpx.post(url, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == code, (body, response.text)
