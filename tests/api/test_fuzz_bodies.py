"""Property: no request body gives a 5xx. Any JSON type in any field is a 400 naming the field
(or is forwarded and answered), never a crash.

Drives the real app in process (httpx.ASGITransport) against an in-process fake Together,
for two provider kinds (Together with its quirks, and plain openai-compat), with valid model
ids and arbitrary bodies: known OpenAI fields with any JSON value, plausible values, and
unknown fields. A streamed answer must not end with an internal error either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.inprocess import in_process_app

CHAT_MODELS = ["together/meta-llama/Llama-3.3-70B-Instruct-Turbo-Free", "compat/chat-model"]
EMBED_MODELS = ["together/togethercomputer/m2-bert-80M-32k-retrieval", "compat/embed-model"]
MODELS = [
    {"model_id": CHAT_MODELS[0], "provider_id": "together",
     "provider_model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"},
    {"model_id": CHAT_MODELS[1], "provider_id": "compat",
     "provider_model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"},
    {"model_id": EMBED_MODELS[0], "provider_id": "together", "model_type": "embedding",
     "provider_model_id": "togethercomputer/m2-bert-80M-32k-retrieval", "metadata": {"embedding_dimension": 768}},
    {"model_id": EMBED_MODELS[1], "provider_id": "compat", "model_type": "embedding",
     "provider_model_id": "BAAI/bge-large-en-v1.5", "metadata": {"embedding_dimension": 1024}},
]

COMMON_FIELDS = [
    "stream", "stream_options", "n", "temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens",
    "max_completion_tokens", "seed", "top_logprobs", "logprobs", "stop", "store", "user", "logit_bias", "metadata",
    "service_tier", "top_k", "min_p", "repetition_penalty",
]
CHAT_FIELDS = [*COMMON_FIELDS, "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format",
               "functions", "function_call", "reasoning_effort", "modalities", "prediction", "audio"]
COMPLETION_FIELDS = [*COMMON_FIELDS, "prompt", "echo", "best_of", "suffix"]
EMBEDDING_FIELDS = ["input", "encoding_format", "dimensions", "user"]
PATHS = {"chat": "/v1/chat/completions", "completion": "/v1/completions", "embeddings": "/v1/embeddings"}

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "developer"])
parts = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]) | json_values},
                              optional={"text": json_values, "image_url": json_values})
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles | json_values, "content": st.text(max_size=20) | st.lists(parts, max_size=2) | json_values},
        optional={"tool_call_id": json_values, "tool_calls": json_values, "name": json_values},
    ) | json_values,
    min_size=1, max_size=3,
)
tools = st.lists(st.fixed_dictionaries({"type": st.just("function") | json_values, "function": st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=8) | json_values},
    optional={"parameters": json_values, "description": json_values})}), max_size=2)
plausible: dict[str, st.SearchStrategy[Any]] = {
    "messages": messages,
    "tools": tools,
    "stream": st.booleans(),
    "prompt": st.text(max_size=20) | st.lists(st.text(max_size=8), min_size=1, max_size=3)
    | st.lists(st.integers(0, 1000), min_size=1, max_size=3),
    "input": st.text(max_size=20) | st.lists(st.text(max_size=8), min_size=1, max_size=3),
    "n": st.integers(1, 3),
    "max_tokens": st.integers(1, 50),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": json_values}),
    "response_format": st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "json_schema"])},
                                             optional={"json_schema": json_values}),
    "tool_choice": st.sampled_from(["auto", "none", "required"]) | json_values,
    "encoding_format": st.sampled_from(["float", "base64"]),
}


def _fields(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    def value_for(name: str) -> st.SearchStrategy[Any]:
        return plausible.get(name, json_values) | json_values if name in plausible else json_values

    known = st.lists(st.sampled_from(names), unique=True, max_size=6).flatmap(
        lambda chosen: st.fixed_dictionaries({name: value_for(name) for name in chosen}))
    unknown = st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in names and k != "model"),
                              json_values, max_size=2)
    return st.tuples(known, unknown).map(lambda pair: {**pair[1], **pair[0]})


def _request(kind: str, models: list[str], names: list[str], required: str) -> st.SearchStrategy[Any]:
    base = st.fixed_dictionaries({"model": st.sampled_from(models), required: plausible[required]})
    return st.tuples(st.just(kind), base, _fields(names)).map(lambda t: (t[0], {**t[1], **t[2]}))


requests = (_request("chat", CHAT_MODELS, CHAT_FIELDS, "messages")
            | _request("completion", CHAT_MODELS, COMPLETION_FIELDS, "prompt")
            | _request("embeddings", EMBED_MODELS, EMBEDDING_FIELDS, "input"))


@pytest.fixture(scope="module")
def app_client() -> Iterator[tuple[asyncio.AbstractEventLoop, Any]]:
    loop = asyncio.new_event_loop()
    context = in_process_app(MODELS)
    client = loop.run_until_complete(context.__aenter__())[1]
    try:
        yield loop, client
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


counts: dict[str, int] = {}


def _events(text: str) -> list[Any]:
    # split on LF only: str.splitlines also splits on U+0085 and U+2028, which an echoed prompt may hold
    return [orjson.loads(line[6:]) for line in text.split("\n")
            if line.startswith("data: ") and line != "data: [DONE]"]


@settings(max_examples=2000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(request=requests)
def test_no_body_gives_a_server_error(app_client: tuple[asyncio.AbstractEventLoop, Any],
                                      request: tuple[str, dict[str, Any]]) -> None:
    loop, client = app_client
    kind, body = request
    response = loop.run_until_complete(client.post(PATHS[kind], content=orjson.dumps(body),
                                                   headers={"content-type": "application/json"}))
    counts[str(response.status_code)] = counts.get(str(response.status_code), 0) + 1
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["message"] and error["type"], response.text
    elif response.headers["content-type"].startswith("text/event-stream"):
        for event in _events(response.text):
            assert not (isinstance(event, dict) and isinstance(event.get("error"), dict)
                        and event["error"].get("code") == "internal_error"), (body, response.text)


def test_the_property_ran_every_case_and_reached_the_happy_path() -> None:
    """The property above must have run its 2,000 cases, and not only against 400s."""
    if not counts:
        pytest.skip("runs after test_no_body_gives_a_server_error (select the module)")
    assert sum(counts.values()) >= 2000, counts
    print("status counts:", counts)
    assert counts.get("200", 0) >= 100, counts


admin_requests = st.one_of(
    st.tuples(st.just("POST"), st.just("/v1/models"),
              st.fixed_dictionaries({"model_id": st.text(min_size=1, max_size=12) | json_values},
                                    optional={"provider_id": st.sampled_from(["together", "compat"]) | json_values,
                                              "provider_model_id": json_values, "model_type": json_values,
                                              "metadata": json_values}),
              st.just({})),
    st.tuples(st.just("GET"), st.sampled_from(["/v1/chat/completions", "/v1/responses", "/v1/inspect/routes"]),
              st.just(None),
              st.dictionaries(st.sampled_from(["limit", "order", "after", "model", "api_filter"]),
                              st.text(max_size=6) | st.integers(-5, 10**30).map(str), max_size=3)),
)


@settings(max_examples=500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(request=admin_requests)
def test_no_admin_request_gives_a_server_error(app_client: tuple[asyncio.AbstractEventLoop, Any],
                                               request: tuple[str, str, Any, dict[str, str]]) -> None:
    loop, client = app_client
    method, path, body, query = request
    content = orjson.dumps(body) if body is not None else None
    response = loop.run_until_complete(client.request(method, path, params=query, content=content))
    assert response.status_code < 500, (method, path, body, query, response.text)
    if response.status_code >= 400:
        assert response.json()["error"]["message"]
