"""Each provider's quirks, unit-tested on the in-process seam double (no socket, milliseconds)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from provider_kit import CHAT_OK, call, chat_ok, make

from relaystack.errors import (
    InvalidRequestError,
    MissingApiKeyError,
    RelaystackError,
    UnsupportedParameterError,
    UpstreamError,
)
from relaystack.providers.base import JsonReply, StreamReply
from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.mock import MockResponse

HELLO = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def _drain(reply: Any) -> list[dict[str, Any]]:
    assert isinstance(reply, StreamReply)
    raw = b"".join([block async for block in reply.blocks])
    return [orjson.loads(line[6:]) for line in raw.split(b"\n\n") if line.startswith(b"data: ")]


async def test_openai_clamps_max_tokens_to_the_model_limit() -> None:
    provider, upstream = make("remote::openai", {"api_key": "k"})
    body = {**HELLO, "max_tokens": 50_000, "max_completion_tokens": 20}
    await provider.chat_completion(body, call(provider, "gpt-4o"))
    assert upstream.last.json["max_tokens"] == 16384 and upstream.last.json["max_completion_tokens"] == 20
    await provider.chat_completion({**HELLO, "max_tokens": 50_000}, call(provider, "gpt-4-turbo-2024-04-09"))
    assert upstream.last.json["max_tokens"] == 4096
    await provider.chat_completion({**HELLO, "max_tokens": 50_000}, call(provider, "my-fine-tune"))
    assert upstream.last.json["max_tokens"] == 50_000


async def test_azure_layout_header_and_listing(caplog: pytest.LogCaptureFixture) -> None:
    listing = {"data": [
        {"id": "gpt-4o", "capabilities": {"chat_completion": True, "embeddings": False}},
        {"id": "text-embedding-3-large", "capabilities": {"chat_completion": False, "embeddings": True}},
        {"id": "mystery-embedder", "capabilities": {"embeddings": True}},
    ]}

    def handler(request: UpstreamRequest) -> MockResponse:
        return MockResponse.json(listing if request.method == "GET" else CHAT_OK)

    provider, upstream = make("remote::azure", {"api_key": "k", "api_base": "https://res.openai.azure.com/",
                                                "api_version": "2024-12-01-preview"}, handler)
    with caplog.at_level(logging.WARNING):
        await provider.start()
    assert "api_version '2024-12-01-preview' is ignored" in caplog.text
    await provider.chat_completion(HELLO, call(provider, "my-deployment"))
    sent = upstream.last
    assert sent.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert sent.headers["api-key"] == "k" and "Authorization" not in sent.headers
    assert sent.json["model"] == "my-deployment"
    types = {e.provider_resource_id: e.model_type for e in await provider.list_models() or []}
    assert types == {"gpt-4o": "llm", "text-embedding-3-large": "embedding"}
    preview, upstream = make("remote::azure", {"api_key": "k", "api_base": "https://r", "api_version": "preview"})
    await preview.chat_completion(HELLO, call(preview, "d"))
    assert upstream.last.url == "https://r/openai/v1/chat/completions?api-version=preview"


async def test_anthropic_lists_every_page_with_its_own_headers() -> None:
    pages = {None: {"data": [{"id": "claude-a", "type": "model"}], "has_more": True, "last_id": "claude-a"},
             "claude-a": {"data": [{"id": "claude-b", "type": "model"}], "has_more": False, "last_id": "claude-b"}}

    def handler(request: UpstreamRequest) -> MockResponse:
        assert request.headers["x-api-key"] == "k" and request.headers["anthropic-version"] == "2023-06-01"
        assert "Authorization" not in request.headers
        after = request.url.split("after_id=")[1] if "after_id=" in request.url else None
        return MockResponse.json(pages[after])

    provider, upstream = make("remote::anthropic", {"api_key": "k"}, handler)
    assert [e.identifier for e in await provider.list_models() or []] == ["anthropic/claude-a", "anthropic/claude-b"]
    assert len(upstream.requests) == 2
    with pytest.raises(InvalidRequestError, match="does not serve embeddings"):
        await provider.embeddings({"model": "m", "input": "x"}, call(provider, "claude-a", "embedding"))


async def test_gemini_fills_embedding_usage_reads_listed_errors_and_wants_base64_images() -> None:
    def handler(request: UpstreamRequest) -> MockResponse:
        if request.url.endswith("/embeddings"):
            return MockResponse.json({"object": "list", "data": [{"index": 0, "embedding": [0.5]}], "model": "x"})
        return MockResponse.json([{"error": {"code": 400, "message": "Invalid JSON payload", "status": "BAD"}}], 400)

    provider, upstream = make("remote::gemini", {"api_key": "k"}, handler)
    reply = await provider.embeddings({"model": "m", "input": "x"}, call(provider, "models/text-embedding-004"))
    assert reply.data["usage"] == {"prompt_tokens": 0, "total_tokens": 0}
    assert upstream.last.url == "https://generativelanguage.googleapis.com/v1beta/openai/embeddings"
    with pytest.raises(UpstreamError, match="Invalid JSON payload"):
        await provider.chat_completion(HELLO, call(provider, "models/gemini-2.0-flash"))
    image = {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
    with pytest.raises(UnsupportedParameterError, match="base64"):
        await provider.chat_completion({**HELLO, "messages": [{"role": "user", "content": [image]}]},
                                       call(provider, "models/gemini-2.0-flash"))


async def test_gemini_usage_on_every_chunk_is_shown_once() -> None:
    chunks = [{"id": "c", "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": f}],
               "usage": {"total_tokens": i}} for i, (w, f) in enumerate([("a", None), ("b", None), ("", "stop")])]
    provider, _ = make("remote::gemini", {"api_key": "k"}, lambda r: MockResponse.sse(chunks))
    asked = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}
    events = await _drain(await provider.chat_completion(asked, call(provider, "g")))
    assert [e.get("usage") for e in events] == [None, None, None, {"total_tokens": 2}]
    assert events[-1]["choices"] == []
    unasked = await _drain(await provider.chat_completion({**HELLO, "stream": True}, call(provider, "g")))
    assert all(e.get("usage") is None for e in unasked) and len(unasked) == 3


async def test_gemini_oauth_token_carries_the_quota_project() -> None:
    provider, upstream = make("remote::gemini", {"access_token": "ya29.token-abcdefgh", "project": "proj"})
    await provider.chat_completion(HELLO, call(provider, "g"))
    assert upstream.last.headers["Authorization"] == "Bearer ya29.token-abcdefgh"
    assert upstream.last.headers["x-goog-user-project"] == "proj"


async def test_vertex_url_from_project_and_location_and_publisher_prefix() -> None:
    provider, upstream = make("remote::vertexai", {"project": "p1", "location": "europe-west4", "access_token": "t"})
    await provider.chat_completion(HELLO, call(provider, "gemini-2.0-flash"))
    assert upstream.last.url == ("https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/"
                                 "europe-west4/endpoints/openapi/chat/completions")
    assert upstream.last.json["model"] == "google/gemini-2.0-flash"
    global_, upstream = make("remote::vertexai", {"project": "p1", "access_token": "t"})
    await global_.chat_completion(HELLO, call(global_, "meta/llama-3.3"))
    assert upstream.last.url.startswith("https://aiplatform.googleapis.com/v1/projects/p1/locations/global/")
    assert upstream.last.json["model"] == "meta/llama-3.3" and await global_.list_models() is None


async def test_bedrock_drops_stream_options_renames_reasoning_and_explains_expiry() -> None:
    body = {**CHAT_OK, "choices": [{"index": 0, "message": {"role": "assistant", "content": "x", "reasoning": "r"},
                                    "finish_reason": "stop"}]}
    provider, upstream = make("remote::bedrock", {"api_key": "bedrock-key-1"}, lambda r: MockResponse.json(body))
    reply = await provider.chat_completion(HELLO, call(provider, "openai.gpt-oss-20b-1:0"))
    assert isinstance(reply, JsonReply) and reply.data["choices"][0]["message"]["reasoning_content"] == "r"
    chunks = [{"id": "c", "choices": [{"index": 0, "delta": {"reasoning": "think"}, "finish_reason": None}]},
              {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    streamed, upstream = make("remote::bedrock", {"api_key": "bedrock-key-1"}, lambda r: MockResponse.sse(chunks))
    events = await _drain(await streamed.chat_completion(
        {**HELLO, "stream": True, "stream_options": {"include_usage": True}}, call(streamed, "m")))
    assert "stream_options" not in upstream.last.json
    assert events[0]["choices"][0]["delta"] == {"reasoning_content": "think"}
    expired, _ = make("remote::bedrock", {"api_key": "bedrock-key-1"},
                      lambda r: MockResponse.error(401, "Bearer Token has expired"))
    with pytest.raises(UpstreamError, match="generate a new one"):
        await expired.chat_completion(HELLO, call(expired, "m"))
    runtime, _ = make("remote::bedrock", {"base_url": "https://bedrock-runtime.us-east-1.amazonaws.com/openai/v1"})
    assert runtime.auth.sigv4.service == "bedrock"  # type: ignore[attr-defined]


async def test_databricks_lists_serving_endpoints_by_task() -> None:
    listing = {"endpoints": [{"name": "chat-ep", "task": "llm/v1/chat"},
                             {"name": "databricks-bge-large-en", "task": "llm/v1/embeddings"},
                             {"name": "unknown-embedder", "task": "llm/v1/embeddings"}]}
    provider, upstream = make("remote::databricks", {"url": "https://dbc-1.cloud.databricks.com/", "api_token": "t"},
                              lambda r: MockResponse.json(listing))
    types = {e.provider_resource_id: e.model_type for e in await provider.list_models() or []}
    assert types == {"chat-ep": "llm", "databricks-bge-large-en": "embedding"}
    assert upstream.last.url == "https://dbc-1.cloud.databricks.com/api/2.0/serving-endpoints"
    assert provider.base_url == "https://dbc-1.cloud.databricks.com/serving-endpoints"


async def test_nvidia_hosted_needs_a_key_and_embeds_with_input_type() -> None:
    hosted, upstream = make("remote::nvidia", {})
    assert hosted.base_url == "https://integrate.api.nvidia.com/v1"
    with pytest.raises(MissingApiKeyError):
        await hosted.chat_completion(HELLO, call(hosted, "m"))
    keyed, upstream = make("remote::nvidia", {"api_key": "nvapi-1"}, lambda r: MockResponse.json(
        {"data": [{"index": 0, "embedding": [1.0]}], "usage": {"prompt_tokens": 1, "total_tokens": 1}}))
    await keyed.embeddings({"model": "m", "input": "x"}, call(keyed, "nvidia/nv-embedqa-e5-v5", "embedding"))
    assert upstream.last.json["input_type"] == "query"
    await keyed.embeddings({"model": "m", "input": "x", "input_type": "passage", "truncate": "END"},
                           call(keyed, "nvidia/nv-embedqa-e5-v5", "embedding"))
    assert upstream.last.json["input_type"] == "passage" and upstream.last.json["truncate"] == "END"


async def test_nvidia_hosted_rerank_uses_the_model_url_and_sorts() -> None:
    provider, upstream = make("remote::nvidia", {"api_key": "nvapi-1"}, lambda r: MockResponse.json(
        {"rankings": [{"index": 0, "logit": -2.0}, {"index": 2, "logit": 5.5}, {"index": 1, "logit": 0.1}]}))
    reply = await provider.rerank({"model": "m", "query": "q", "items": ["a", "b", "c"], "max_num_results": 2},
                                  call(provider, "nvidia/llama-3.2-nv-rerankqa-1b-v2", "rerank"))
    assert reply.data == {"data": [{"index": 2, "relevance_score": 5.5}, {"index": 1, "relevance_score": 0.1}]}
    assert upstream.last.url.endswith("/retrieval/nvidia/llama-3_2-nv-rerankqa-1b-v2/reranking")
    assert upstream.last.json["passages"] == [{"text": "a"}, {"text": "b"}, {"text": "c"}]


async def test_vllm_defaults_max_tokens_types_by_name_and_reranks_at_the_root() -> None:
    listing = {"data": [{"id": "Qwen/Qwen3", "max_model_len": 4096}, {"id": "BAAI/bge-m3-embed"},
                        {"id": "BAAI/bge-reranker-v2-m3"}]}

    def handler(request: UpstreamRequest) -> MockResponse:
        if request.method == "GET":
            return MockResponse.json(listing)
        if request.url.endswith("/rerank"):
            return MockResponse.json({"results": [{"index": 1, "relevance_score": 0.9},
                                                  {"index": 0, "relevance_score": 0.2}]})
        return MockResponse.json(CHAT_OK)

    provider, upstream = make("remote::vllm", {"url": "http://gpu:8000/v1", "max_tokens": 512}, handler)
    await provider.chat_completion(HELLO, call(provider, "Qwen/Qwen3"))
    assert upstream.last.json["max_tokens"] == 512
    await provider.chat_completion({**HELLO, "max_completion_tokens": 7}, call(provider, "Qwen/Qwen3"))
    assert "max_tokens" not in upstream.last.json
    entries = {e.provider_resource_id: (e.model_type, e.metadata) for e in await provider.list_models() or []}
    assert entries["Qwen/Qwen3"] == ("llm", {"context_length": 4096})
    assert entries["BAAI/bge-m3-embed"][0] == "embedding" and entries["BAAI/bge-reranker-v2-m3"][0] == "rerank"
    reply = await provider.rerank({"model": "m", "query": "q", "items": ["a", "b"]},
                                  call(provider, "BAAI/bge-reranker-v2-m3", "rerank"))
    assert upstream.last.url == "http://gpu:8000/rerank" and reply.data["data"][0]["index"] == 1


async def test_watsonx_translates_chat_and_embeddings() -> None:
    def handler(request: UpstreamRequest) -> MockResponse:
        if "/text/embeddings" in request.url:
            return MockResponse.json({"results": [{"embedding": [0.1]}, {"embedding": [0.2]}],
                                      "input_token_count": 4})
        return MockResponse.json({k: v for k, v in CHAT_OK.items() if k != "object"} | {"model_id": "x"})

    provider, upstream = make("remote::watsonx", {"project_id": "p1"}, handler)
    provider.credentials_optional = True  # no IAM in this unit test
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    reply = await provider.chat_completion({**HELLO, "tools": tools, "tool_choice": "auto",
                                            "parallel_tool_calls": False}, call(provider, "ibm/granite"))
    sent = upstream.last
    assert sent.url == "https://us-south.ml.cloud.ibm.com/ml/v1/text/chat?version=2024-03-13"
    assert sent.json["model_id"] == "ibm/granite" and sent.json["project_id"] == "p1"
    assert sent.json["tool_choice_option"] == "auto" and "tool_choice" not in sent.json
    assert not {"model", "parallel_tool_calls"} & set(sent.json)
    assert isinstance(reply, JsonReply) and reply.data["object"] == "chat.completion"
    embedded = await provider.embeddings({"model": "m", "input": ["a", "b"]}, call(provider, "ibm/emb", "embedding"))
    assert upstream.last.json == {"inputs": ["a", "b"], "model_id": "ibm/emb", "project_id": "p1"}
    assert [d["embedding"] for d in embedded.data["data"]] == [[0.1], [0.2]]
    assert embedded.data["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    per_request = call(provider, "ibm/granite", provider_data={"watsonx_project_id": "p2"})
    await provider.chat_completion({**HELLO, "stream": True}, per_request)
    assert upstream.last.url.split("?")[0].endswith("/text/chat_stream") and upstream.last.json["project_id"] == "p2"
    bare, _ = make("remote::watsonx", {})
    bare.credentials_optional = True
    with pytest.raises(InvalidRequestError, match="project_id"):
        await bare.chat_completion(HELLO, call(bare, "ibm/granite"))


@pytest.mark.parametrize(("provider_type", "config", "operation"), [
    ("remote::cerebras", {"api_key": "k"}, "embeddings"),
    ("remote::groq", {"api_key": "k"}, "embeddings"),
    ("remote::llama-openai-compat", {"api_key": "k"}, "completion"),
    ("remote::llama-openai-compat", {"api_key": "k"}, "embeddings"),
    ("remote::databricks", {"url": "https://w", "api_key": "k"}, "completion"),
    ("remote::openai", {"api_key": "k"}, "rerank"),
])
async def test_a_provider_refuses_what_it_cannot_do_without_calling(provider_type: str, config: dict[str, str],
                                                                   operation: str) -> None:
    provider, upstream = make(provider_type, config, chat_ok)
    body = {"model": "m", "input": "x", "prompt": "x", "query": "q", "items": ["a"]}
    with pytest.raises(InvalidRequestError) as caught:
        await getattr(provider, operation)(body, call(provider, "m"))
    assert caught.value.code == "unsupported_operation" and provider_type in caught.value.message
    assert upstream.requests == []


async def test_watsonx_completions_are_its_text_generation_api() -> None:
    answer = {"model_id": "ibm/granite", "results": [{"generated_text": "Paris.", "generated_token_count": 2,
                                                      "input_token_count": 5, "stop_reason": "eos_token"}]}
    provider, upstream = make("remote::watsonx", {"project_id": "p1"}, lambda r: MockResponse.json(answer))
    provider.credentials_optional = True
    reply = await provider.completion({"model": "m", "prompt": ["Capital of France?"], "max_tokens": 8,
                                       "temperature": 0, "stop": "\n", "seed": 3}, call(provider, "ibm/granite"))
    assert upstream.last.url.startswith("https://us-south.ml.cloud.ibm.com/ml/v1/text/generation?version=")
    assert upstream.last.json == {"input": "Capital of France?", "model_id": "ibm/granite", "project_id": "p1",
                                  "parameters": {"max_new_tokens": 8, "temperature": 0, "random_seed": 3,
                                                 "stop_sequences": ["\n"], "decoding_method": "greedy"}}
    assert isinstance(reply, JsonReply) and reply.data["object"] == "text_completion"
    assert reply.data["choices"][0] == {"index": 0, "text": "Paris.", "logprobs": None, "finish_reason": "stop"}
    assert reply.data["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    with pytest.raises(InvalidRequestError, match="one text prompt"):
        await provider.completion({"model": "m", "prompt": ["a", "b"]}, call(provider, "ibm/granite"))


def _generation(text: str, stop: str = "not_finished") -> dict[str, Any]:
    return {"model_id": "ibm/granite", "results": [{"generated_text": text, "stop_reason": stop}]}


async def test_watsonx_streamed_generations_are_translated_then_checked() -> None:
    events = [_generation("Par"), _generation("is."), _generation("", "eos_token")]
    provider, upstream = make("remote::watsonx", {"project_id": "p1"}, lambda r: MockResponse.sse(events, done=False))
    provider.credentials_optional = True
    body = {"model": "m", "prompt": "Capital of France?", "stream": True}
    chunks = await _drain(await provider.completion(body, call(provider, "ibm/granite")))
    assert upstream.last.url.startswith("https://us-south.ml.cloud.ibm.com/ml/v1/text/generation_stream?version=")
    assert [c["choices"][0]["text"] for c in chunks] == ["Par", "is.", ""]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert {c["model"] for c in chunks} == {"watsonx/ibm/granite"}


@pytest.mark.parametrize(("bad", "code"), [
    (b"data: {not json\n\n", "upstream_malformed_event"),
    (b"data: [1, 2]\n\n", "upstream_malformed_event"),
    (b'data: {"error": {"message": "quota exceeded", "status": 429}}\n\n', None),
])
async def test_a_bad_watsonx_stream_event_fails_the_stream(bad: bytes, code: str | None) -> None:
    first = b"data: " + orjson.dumps(_generation("Par")) + b"\n\n"
    provider, _ = make("remote::watsonx", {"project_id": "p1"},
                       lambda r: MockResponse.sse([first, bad, b"data: " + orjson.dumps(_generation("", "eos_token"))
                                                   + b"\n\n"], done=False))
    provider.credentials_optional = True
    reply = await provider.completion({"model": "m", "prompt": "x", "stream": True}, call(provider, "ibm/granite"))
    with pytest.raises(RelaystackError) as failed:
        await _drain(reply)
    if code is None:  # the upstream's own error event: its status and message, as an error
        assert isinstance(failed.value, UpstreamError) and failed.value.status_code == 429
        assert "quota exceeded" in failed.value.message
    else:
        assert failed.value.code == code


@pytest.mark.parametrize("stream", [False, True])
async def test_a_redirect_is_a_502_naming_where_it_points_not_a_json_error(stream: bool) -> None:
    def handler(request: UpstreamRequest) -> MockResponse:
        return MockResponse(301, {"Location": "https://new.example.com/v1/chat/completions?key=secret",
                                  "Content-Type": "text/html"}, [b"<html>moved</html>"])

    provider, _ = make("remote::openai", {"api_key": "k"}, handler)
    with pytest.raises(UpstreamError) as caught:
        await provider.chat_completion({**HELLO, "stream": stream}, call(provider, "gpt-4o"))
    error = caught.value
    assert error.status_code == 502 and error.code == "upstream_redirect"
    assert "https://new.example.com" in error.message and "secret" not in error.message
