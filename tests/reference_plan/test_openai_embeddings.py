"""The reference's Together plan, part 2: embeddings, over both clients.

Same cases and inputs as llama-stack's ``tests/integration/inference/test_openai_embeddings.py``.
Together differs from the reference's expectations in three ways, each handled up front:

- ``dimensions`` and ``user`` (quirks Q3/Q4): the reference skipped; relaystack answers 400 before
  any upstream call (no recording exists for those bodies, so forwarding would be a replay miss);
- ``encoding_format="base64"`` (Q5): the reference skipped; relaystack asks Together for floats and
  encodes them itself. The base64 cases therefore use inputs that have *float* recordings: the
  replay hit proves ``encoding_format`` never reaches Together, and the decoded vectors must equal
  the recorded floats rounded to float32. (The reference's own base64 inputs, "Test base64
  encoding format" and "First/Second/Third text for base64", were never recorded for Together.)
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from ._api import API_ERRORS
from ._recordings import Recordings

UPSTREAM_EMBEDDING_MODEL = "togethercomputer/m2-bert-80M-32k-retrieval"
DIMENSION = 768


def decode_base64_floats(text: str) -> list[float]:
    raw = base64.b64decode(text)
    assert len(raw) % 4 == 0, "base64 embedding is not a whole number of float32 values"
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def as_float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def recorded_vectors(recordings: Recordings, text: str | list[str]) -> list[list[float]]:
    return recordings.embeddings({"model": UPSTREAM_EMBEDDING_MODEL, "input": text})


def assert_float_embeddings(response: Any, count: int) -> None:
    assert response.object == "list"
    assert len(response.data) == count
    for index, item in enumerate(response.data):
        assert item.object == "embedding"
        assert item.index == index
        assert isinstance(item.embedding, list) and len(item.embedding) > 0
        assert all(isinstance(x, float) for x in item.embedding)


def test_openai_embeddings_single_string(
    compat_client: Any, embedding_model_id: str, replaying: bool, recordings: Recordings
) -> None:
    response = compat_client.embeddings.create(model=embedding_model_id, input="Hello, world!", encoding_format="float")
    assert_float_embeddings(response, 1)
    assert response.model == embedding_model_id
    if replaying:
        assert [response.data[0].embedding] == recorded_vectors(recordings, "Hello, world!")


def test_openai_embeddings_multiple_strings(
    compat_client: Any, embedding_model_id: str, replaying: bool, recordings: Recordings
) -> None:
    texts = ["Hello, world!", "How are you today?", "This is a test."]
    response = compat_client.embeddings.create(model=embedding_model_id, input=texts, encoding_format="float")
    assert_float_embeddings(response, len(texts))
    assert response.model == embedding_model_id
    if replaying:
        assert [item.embedding for item in response.data] == recorded_vectors(recordings, texts)


def test_openai_embeddings_with_encoding_format_float(
    compat_client: Any, embedding_model_id: str, replaying: bool, recordings: Recordings
) -> None:
    response = compat_client.embeddings.create(
        model=embedding_model_id, input="Test encoding format", encoding_format="float"
    )
    assert_float_embeddings(response, 1)
    if replaying:
        assert [response.data[0].embedding] == recorded_vectors(recordings, "Test encoding format")


def test_openai_embeddings_with_dimensions(compat_client: Any, embedding_model_id: str) -> None:
    """Reference: skipped for Together (Q4, upstream 400). relaystack: a clear 400, no upstream call."""
    with pytest.raises(API_ERRORS) as caught:
        compat_client.embeddings.create(model=embedding_model_id, input="Test dimensions parameter", dimensions=16)
    assert caught.value.status_code == 400, repr(caught.value)
    assert "dimensions" in str(caught.value)


def test_openai_embeddings_with_user_parameter(compat_client: Any, embedding_model_id: str) -> None:
    """Reference: skipped for Together (Q3, upstream 400). relaystack: a clear 400, no upstream call."""
    with pytest.raises(API_ERRORS) as caught:
        compat_client.embeddings.create(model=embedding_model_id, input="Test user parameter", user="test-user-123")
    assert caught.value.status_code == 400, repr(caught.value)
    assert "user" in str(caught.value)


def test_openai_embeddings_empty_list_error(compat_client: Any, embedding_model_id: str) -> None:
    # the reference accepted any exception; a client mistake deserves a 400
    with pytest.raises(API_ERRORS) as caught:
        compat_client.embeddings.create(model=embedding_model_id, input=[])
    assert caught.value.status_code == 400, repr(caught.value)


def test_openai_embeddings_invalid_model_error(compat_client: Any, embedding_model_id: str) -> None:
    with pytest.raises(API_ERRORS) as caught:
        compat_client.embeddings.create(model="invalid-model-id", input="Test text")
    assert caught.value.status_code == 404, repr(caught.value)
    assert "invalid-model-id" in str(caught.value)


def test_openai_embeddings_different_inputs_different_outputs(compat_client: Any, embedding_model_id: str) -> None:
    first = (
        compat_client.embeddings.create(
            model=embedding_model_id, input="This is the first text", encoding_format="float"
        )
        .data[0]
        .embedding
    )
    second = (
        compat_client.embeddings.create(
            model=embedding_model_id, input="This is completely different content", encoding_format="float"
        )
        .data[0]
        .embedding
    )
    assert len(first) == len(second) == DIMENSION
    assert first != second


def test_openai_embeddings_with_encoding_format_base64(
    compat_client: Any, embedding_model_id: str, replaying: bool, recordings: Recordings
) -> None:
    """Adapted: no ``dimensions`` (Together has none) and a recorded input (see module docstring)."""
    response = compat_client.embeddings.create(
        model=embedding_model_id, input="Test encoding format", encoding_format="base64"
    )
    assert response.object == "list"
    assert len(response.data) == 1
    item = response.data[0]
    assert item.object == "embedding" and item.index == 0
    assert isinstance(item.embedding, str)
    decoded = decode_base64_floats(item.embedding)
    assert len(decoded) == DIMENSION
    floats = (
        compat_client.embeddings.create(model=embedding_model_id, input="Test encoding format", encoding_format="float")
        .data[0]
        .embedding
    )
    assert decoded == as_float32(floats)
    if replaying:
        assert decoded == as_float32(recorded_vectors(recordings, "Test encoding format")[0])


def test_openai_embeddings_base64_batch_processing(
    compat_client: Any, embedding_model_id: str, replaying: bool, recordings: Recordings
) -> None:
    """Adapted: the batch is the recorded three-string input (see module docstring)."""
    texts = ["Hello, world!", "How are you today?", "This is a test."]
    response = compat_client.embeddings.create(model=embedding_model_id, input=texts, encoding_format="base64")
    assert response.object == "list"
    assert response.model == embedding_model_id
    assert len(response.data) == len(texts)
    vectors = []
    for index, item in enumerate(response.data):
        assert item.object == "embedding" and item.index == index
        assert isinstance(item.embedding, str)
        vectors.append(decode_base64_floats(item.embedding))
    assert {len(v) for v in vectors} == {DIMENSION}
    if replaying:
        assert vectors == [as_float32(v) for v in recorded_vectors(recordings, texts)]


def test_openai_embeddings_openai_sdk_default_encoding(
    openai_client: Any, embedding_model_id: str, replaying: bool, recordings: Recordings
) -> None:
    """Beyond the reference: without ``encoding_format`` the OpenAI SDK asks for base64 on the wire
    and decodes it, so a plain ``embeddings.create`` works only if the server can encode."""
    response = openai_client.embeddings.create(model=embedding_model_id, input="Hello, world!")
    vector = response.data[0].embedding
    assert isinstance(vector, list) and len(vector) == DIMENSION
    if replaying:
        assert vector == as_float32(recorded_vectors(recordings, "Hello, world!")[0])
