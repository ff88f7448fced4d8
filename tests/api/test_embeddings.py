"""Embeddings through relaystack to a fake Together that, like the reference era, only returns floats."""

from __future__ import annotations

import base64
import struct

import httpx
import openai
import pytest

from support.stack import CHAT_MODEL, EMBED_MODEL, Stack


def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0)


def test_sdk_default_base64_is_encoded_by_relaystack(stack: Stack) -> None:
    response = client(stack).embeddings.create(model=EMBED_MODEL, input="Hello, world!")
    assert len(response.data[0].embedding) == 768
    assert response.model == EMBED_MODEL
    # Together never sees encoding_format (the reference recordings: just model and input)
    assert stack.fake.last_request.json == {"model": "togethercomputer/m2-bert-80M-32k-retrieval",
                                            "input": "Hello, world!"}


def test_float_and_base64_agree(stack: Stack) -> None:
    floats = httpx.post(f"{stack.base_url}/v1/embeddings",
                        json={"model": EMBED_MODEL, "input": ["a", "b"], "encoding_format": "float"}).json()
    b64 = httpx.post(f"{stack.base_url}/v1/embeddings",
                     json={"model": EMBED_MODEL, "input": ["a", "b"], "encoding_format": "base64"}).json()
    for f_item, b_item in zip(floats["data"], b64["data"], strict=True):
        raw = base64.b64decode(b_item["embedding"])
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert decoded == pytest.approx(f_item["embedding"], rel=1e-6)
    assert floats["usage"] == {"prompt_tokens": -1, "total_tokens": -1}  # m2-bert sends no usage


@pytest.mark.parametrize(("field", "value"), [("user", "someone"), ("dimensions", 128)])
def test_together_refuses_user_and_dimensions_before_any_upstream_call(stack: Stack, field: str, value: object) -> None:
    response = httpx.post(f"{stack.base_url}/v1/embeddings", json={"model": EMBED_MODEL, "input": "x", field: value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field
    assert stack.fake.requests_to("/v1/embeddings") == []


def test_empty_input_and_wrong_model_type(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError):
        client(stack).embeddings.create(model=EMBED_MODEL, input=[])
    with pytest.raises(openai.BadRequestError):
        client(stack).embeddings.create(model=CHAT_MODEL, input="x")
    with pytest.raises(openai.NotFoundError):
        client(stack).embeddings.create(model="no-such-embedder", input="x")
