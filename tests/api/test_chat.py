"""Chat completions through `relaystack run` with the official openai SDK, against a fake Together."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from support.stack import CHAT_MODEL, Stack

UPSTREAM_CHAT = "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
HELLO = [{"role": "user", "content": "Hello, world!"}]


def client(stack: Stack, prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url + prefix, api_key="unused", max_retries=0)


@pytest.mark.parametrize("prefix", ["/v1", "/v1/openai/v1"])
def test_non_streaming_chat_echoes_the_callers_model_and_forwards_only_what_was_set(stack: Stack, prefix: str) -> None:
    response = client(stack, prefix).chat.completions.create(model=CHAT_MODEL, messages=HELLO, seed=7)
    assert response.model == CHAT_MODEL
    assert response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"
    sent = stack.fake.last_request.json
    # exactly what the client set, with the upstream's model id: no nulls, no defaults added
    assert sent == {"model": UPSTREAM_CHAT, "messages": HELLO, "seed": 7}


def test_unknown_fields_are_passed_through(stack: Stack) -> None:
    client(stack).chat.completions.create(
        model=CHAT_MODEL, messages=HELLO, extra_body={"top_k": 5, "repetition_penalty": 1.1},
    )
    sent = stack.fake.last_request.json
    assert sent["top_k"] == 5 and sent["repetition_penalty"] == 1.1


def test_stream_relays_every_chunk_with_the_callers_model_and_ends_with_done(stack: Stack) -> None:
    with httpx.stream("POST", f"{stack.base_url}/v1/chat/completions",
                      json={"model": CHAT_MODEL, "messages": HELLO, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks and all(c["model"] == CHAT_MODEL for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # Together appends usage unasked: the client did not ask, so it does not see it
    assert all(c.get("usage") is None for c in chunks)


def test_stream_decided_by_the_body_whatever_the_accept_header(stack: Stack) -> None:
    response = httpx.post(f"{stack.base_url}/v1/chat/completions", headers={"Accept": "application/json"},
                          json={"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")


def test_include_usage_gives_openais_final_usage_chunk(stack: Stack) -> None:
    stream = client(stack).chat.completions.create(
        model=CHAT_MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_async_client_streams(stack: Stack) -> None:
    async_client = openai.AsyncOpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0)
    stream = await async_client.chat.completions.create(model=CHAT_MODEL, messages=HELLO, stream=True)
    text = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(text)
    await async_client.close()


def test_streamed_tool_calls_are_relayed(stack: Stack) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}}}}}]
    chunks = list(client(stack).chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Weather in Tokyo?"}], tools=tools, stream=True,
    ))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_n_above_one_with_stream_is_refused_before_any_upstream_call(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(stack).chat.completions.create(model=CHAT_MODEL, messages=HELLO, stream=True, n=2)
    assert "n > 1" in caught.value.message
    assert stack.fake.requests_to("/v1/chat/completions") == []


def test_non_standard_object_names_are_normalised_for_completions(stack: Stack) -> None:
    completion = client(stack).completions.create(model=CHAT_MODEL, prompt="Roses are red,", max_tokens=5)
    assert completion.object == "text_completion"
    assert completion.model == CHAT_MODEL
    chunks = list(client(stack).completions.create(model=CHAT_MODEL, prompt="Roses are red,", stream=True))
    assert chunks and all(c.object == "text_completion" and c.model == CHAT_MODEL for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
