"""llama-stack v0.7.1's ``tests/integration/inference/test_openai_embeddings.py``, the 20 cases its run named.

llama-stack ran these on an inline ``sentence-transformers`` model (nomic-embed-text-v1.5): nothing
went upstream, so its recordings for these tests hold only the OpenAI model listings its server made.
Here relaystack's own ``inline::sentence-transformers`` provider (all-MiniLM-L6-v2, embedded, offline)
takes the same place, with the reference's assertions and skips (variable dimensions are not
supported by either: the same two cases skip, for the same reason).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

import pytest

from ._api import API_ERRORS
from .conftest import EMBEDDING_MODEL, Clients, llama_id, provider_type

MODULE = "test_openai_embeddings.py"
# the model the reference named in its test ids
EMB = "emb=sentence-transformers/nomic-ai/nomic-embed-text-v1.5"
CLIENTS = ["openai_client", "llama_stack_client"]
Make = Callable[[str], Clients]


def api(clients: Make, test: str, client: str) -> tuple[Clients, Any]:
    c = clients(llama_id(MODULE, test, client, EMB))
    kind = provider_type(c, EMBEDDING_MODEL)
    if kind in ("inline::meta-reference", "remote::bedrock", "remote::cerebras", "remote::runpod",
                "remote::sambanova", "remote::tgi"):
        pytest.skip(f"Model {EMBEDDING_MODEL} hosted by {kind} doesn't support OpenAI embeddings.")
    return c, c.openai if client == "openai_client" else c.lsc


def skip_unless_variable_dimensions(c: Clients) -> None:
    kind = provider_type(c, EMBEDDING_MODEL)
    if kind in ("remote::together", "inline::sentence-transformers", "remote::databricks"):
        pytest.skip(f"Model {EMBEDDING_MODEL} hosted by {kind} does not support variable output embedding dimensions.")


def floats(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"{len(raw) // 4}f", raw))


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_single_string(clients: Make, client: str) -> None:
    _, e = api(clients, "test_openai_embeddings_single_string", client)
    response = e.embeddings.create(model=EMBEDDING_MODEL, input="Hello, world!", encoding_format="float")
    assert response.object == "list" and response.model == EMBEDDING_MODEL and len(response.data) == 1
    data = response.data[0]
    assert data.object == "embedding" and data.index == 0
    assert data.embedding and all(isinstance(x, float) for x in data.embedding)


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_multiple_strings(clients: Make, client: str) -> None:
    _, e = api(clients, "test_openai_embeddings_multiple_strings", client)
    texts = ["Hello, world!", "How are you today?", "This is a test."]
    response = e.embeddings.create(model=EMBEDDING_MODEL, input=texts, encoding_format="float")
    assert response.model == EMBEDDING_MODEL and len(response.data) == len(texts)
    for i, data in enumerate(response.data):
        assert data.index == i and data.embedding and all(isinstance(x, float) for x in data.embedding)


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_with_encoding_format_float(clients: Make, client: str) -> None:
    _, e = api(clients, "test_openai_embeddings_with_encoding_format_float", client)
    response = e.embeddings.create(model=EMBEDDING_MODEL, input="Test encoding format", encoding_format="float")
    assert len(response.data) == 1 and all(isinstance(x, float) for x in response.data[0].embedding)


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_with_dimensions(clients: Make, client: str) -> None:
    c, e = api(clients, "test_openai_embeddings_with_dimensions", client)
    skip_unless_variable_dimensions(c)
    response = e.embeddings.create(model=EMBEDDING_MODEL, input="Test dimensions parameter", dimensions=16)
    assert len(response.data) == 1 and response.data[0].embedding


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_with_user_parameter(clients: Make, client: str) -> None:
    _, e = api(clients, "test_openai_embeddings_with_user_parameter", client)
    response = e.embeddings.create(model=EMBEDDING_MODEL, input="Test user parameter", user="test-user-123")
    assert len(response.data) == 1 and response.data[0].embedding


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_empty_list_error(clients: Make, client: str) -> None:
    _, e = api(clients, "test_openai_embeddings_empty_list_error", client)
    with pytest.raises(API_ERRORS) as caught:  # the reference accepts any exception; we want the 400
        e.embeddings.create(model=EMBEDDING_MODEL, input=[])
    assert caught.value.status_code == 400


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_invalid_model_error(clients: Make, client: str) -> None:
    _, e = api(clients, "test_openai_embeddings_invalid_model_error", client)
    with pytest.raises(API_ERRORS) as caught:
        e.embeddings.create(model="invalid-model-id", input="Test text")
    assert caught.value.status_code == 404 and "invalid-model-id" in str(caught.value)


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_different_inputs_different_outputs(clients: Make, client: str) -> None:
    _, e = api(clients, "test_openai_embeddings_different_inputs_different_outputs", client)
    first = e.embeddings.create(model=EMBEDDING_MODEL, input="This is the first text", encoding_format="float")
    second = e.embeddings.create(model=EMBEDDING_MODEL, input="This is completely different content",
                                 encoding_format="float")
    a, b = first.data[0].embedding, second.data[0].embedding
    assert len(a) == len(b) and a != b


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_with_encoding_format_base64(clients: Make, client: str) -> None:
    c, e = api(clients, "test_openai_embeddings_with_encoding_format_base64", client)
    kind = provider_type(c, EMBEDDING_MODEL)
    if kind in ("remote::together", "remote::databricks"):
        pytest.skip(f"Model {EMBEDDING_MODEL} hosted by {kind} does not support encoding_format='base64'.")
    skip_unless_variable_dimensions(c)
    response = e.embeddings.create(model=EMBEDDING_MODEL, input="Test base64 encoding format",
                                   encoding_format="base64", dimensions=12)
    assert isinstance(response.data[0].embedding, str) and len(floats(response.data[0].embedding)) == 12


@pytest.mark.parametrize("client", CLIENTS)
def test_openai_embeddings_base64_batch_processing(clients: Make, client: str) -> None:
    c, e = api(clients, "test_openai_embeddings_base64_batch_processing", client)
    kind = provider_type(c, EMBEDDING_MODEL)
    if kind in ("remote::together", "remote::databricks"):
        pytest.skip(f"Model {EMBEDDING_MODEL} hosted by {kind} does not support encoding_format='base64'.")
    texts = ["First text for base64", "Second text for base64", "Third text for base64"]
    response = e.embeddings.create(model=EMBEDDING_MODEL, input=texts, encoding_format="base64")
    assert response.model == EMBEDDING_MODEL
    assert [d.index for d in response.data] == [0, 1, 2]
    encoded = [d.embedding for d in response.data]
    assert len(encoded) == len(texts) and all(isinstance(x, str) for x in encoded)
    dimensions = {len(floats(x)) for x in encoded}
    assert len(dimensions) == 1 and dimensions.pop() > 0
