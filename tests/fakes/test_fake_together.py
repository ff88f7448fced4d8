"""The fake Together itself: shapes and quirks as in the real recordings, and its fault controls.

Raw aiohttp where the wire matters (SSE framing, [DONE], cut streams), the official OpenAI SDK
where what matters is that a real client can read the answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from .fake_together import DEFAULT_API_KEY, FakeTogether
from .together_bodies import N_WITH_STREAM_MESSAGE

CHAT = "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
M2_BERT = "togethercomputer/m2-bert-80M-32k-retrieval"
BGE_LARGE = "BAAI/bge-large-en-v1.5"
AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a given city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def sdk(fake: FakeTogether, key: str = DEFAULT_API_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key=key, max_retries=0)


async def sse_events(fake: FakeTogether, path: str, body: dict[str, Any]) -> list[str]:
    """The ``data:`` payloads of a stream, raw, in order (``[DONE]`` included)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.base_url + path, json=body, headers=AUTH) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        text = (await resp.read()).decode()
    assert text.endswith("\n\n")
    return [block.removeprefix("data: ") for block in text.strip().split("\n\n")]


def test_models_is_a_bare_array_of_together_models(fake_together: FakeTogether) -> None:
    import httpx

    resp = httpx.get(fake_together.base_url + "/models", headers=AUTH)
    assert resp.status_code == 200
    models = resp.json()
    assert isinstance(models, list)  # quirk Q1: no {"object": "list", "data": [...]}
    by_id = {m["id"]: m for m in models}
    assert by_id[CHAT]["type"] == "chat"
    assert by_id[M2_BERT]["type"] == by_id[BGE_LARGE]["type"] == "embedding"
    assert {"embedding", "image", "rerank", "chat", "language", "code", "moderation", "audio"} <= {
        m["type"] for m in models
    }
    for model in models:
        assert model["object"] == "model"
        assert {"created", "display_name", "organization", "context_length", "pricing"} <= set(model)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": DEFAULT_API_KEY}])
def test_missing_or_wrong_key_gets_togethers_401(fake_together: FakeTogether, headers: dict[str, str]) -> None:
    import httpx

    resp = httpx.post(fake_together.base_url + "/chat/completions", headers=headers, json={"model": CHAT})
    assert resp.status_code == 401
    assert resp.json() == {
        "error": {
            "message": "Invalid API key provided",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


def test_accepted_keys_are_configurable(fake_together: FakeTogether) -> None:
    fake_together.accept_keys("k-one", "k-two")
    assert sdk(fake_together, "k-two").models.with_raw_response.list().status_code == 200
    with pytest.raises(openai.AuthenticationError):
        sdk(fake_together).embeddings.create(model=M2_BERT, input="x")


def test_chat_completion_has_togethers_extras(fake_together: FakeTogether) -> None:
    client = sdk(fake_together)
    messages = [{"role": "user", "content": "Hello, world!"}]
    first = client.chat.completions.create(model=CHAT, messages=messages)
    second = client.chat.completions.create(model=CHAT, messages=messages)
    assert first.id.startswith("oBU") and first.id != second.id
    assert first.object == "chat.completion"
    assert first.choices[0].message.content == "You said: Hello, world!"
    assert first.choices[0].finish_reason == "stop"
    raw = first.model_dump()
    assert raw["prompt"] == []
    assert isinstance(raw["choices"][0]["seed"], int)
    assert raw["usage"]["cached_tokens"] == 0
    assert first.usage is not None and first.usage.completion_tokens == 4


def test_max_tokens_truncates_with_finish_reason_length(fake_together: FakeTogether) -> None:
    reply = sdk(fake_together).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "one two three four"}], max_tokens=2
    )
    assert reply.choices[0].message.content == "You said:"
    assert reply.choices[0].finish_reason == "length"


async def test_chat_stream_always_ends_with_usage_then_done(fake_together: FakeTogether) -> None:
    events = await sse_events(
        fake_together,
        "/chat/completions",
        {
            "model": CHAT,
            "messages": [{"role": "user", "content": "Hello, world!"}],
            "stream": True,
        },
    )
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "You said: Hello, world!"
    for chunk in chunks[:-1]:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["usage"] is None and chunk["choices"][0]["seed"] is None
        assert chunk["choices"][0]["text"] == chunk["choices"][0]["delta"]["content"]
        assert isinstance(chunk["choices"][0]["delta"]["token_id"], int)
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert isinstance(final["choices"][0]["seed"], int)
    assert final["usage"]["total_tokens"] == final["usage"]["prompt_tokens"] + 4  # usage never asked for
    assert len({c["id"] for c in chunks}) == 1


def test_n_above_one_with_stream_is_refused_like_together(fake_together: FakeTogether) -> None:
    client = sdk(fake_together)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=CHAT, messages=messages, n=2, stream=True)
    assert caught.value.body["message"] == N_WITH_STREAM_MESSAGE
    both = client.chat.completions.create(model=CHAT, messages=messages, n=2)
    assert [c.index for c in both.choices] == [0, 1]


def test_tool_call_non_streaming(fake_together: FakeTogether) -> None:
    reply = sdk(fake_together).chat.completions.create(
        model=CHAT,
        messages=[{"role": "user", "content": "Tokyo"}],
        tools=[WEATHER_TOOL],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Tokyo"}


async def test_tool_call_streams_like_together(fake_together: FakeTogether) -> None:
    events = await sse_events(
        fake_together,
        "/chat/completions",
        {
            "model": CHAT,
            "messages": [{"role": "user", "content": "What's the weather in Tokyo today?"}],
            "tools": [WEATHER_TOOL],
            "stream": True,
        },
    )
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    opening = deltas[1]["tool_calls"][0]
    assert opening["id"].startswith("call_") and opening["function"] == {
        "arguments": "",
        "name": "get_weather",
    }
    fragments = [d["tool_calls"][0] for d in deltas[2:-1]]
    assert len(fragments) > 1 and all(f["id"] is None and f["function"]["name"] is None for f in fragments)
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == {
        "city": "What's the weather in Tokyo today?"
    }
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] is not None


async def test_completions_use_togethers_object_names(fake_together: FakeTogether) -> None:
    reply = sdk(fake_together).completions.create(model=CHAT, prompt="Roses are red")
    assert reply.object == "text.completion"
    assert reply.choices[0].text == " You wrote: Roses are red"
    events = await sse_events(
        fake_together,
        "/completions",
        {
            "model": CHAT,
            "prompt": "Roses are red",
            "max_tokens": 3,
            "stream": True,
        },
    )
    chunks = [json.loads(e) for e in events[:-1]]
    assert events[-1] == "[DONE]"
    assert {c["object"] for c in chunks} == {"completion.chunk"}
    assert "".join(c["choices"][0]["text"] for c in chunks) == " You wrote: Roses"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:-1])


def test_embeddings_dimensions_usage_and_determinism(fake_together: FakeTogether) -> None:
    client = sdk(fake_together)
    m2 = client.embeddings.create(model=M2_BERT, input=["same", "other", "same"], encoding_format="float")
    assert [len(d.embedding) for d in m2.data] == [768, 768, 768]
    assert m2.data[0].embedding == m2.data[2].embedding != m2.data[1].embedding
    assert m2.model_dump()["usage"] is None  # quirk Q2
    bge = client.embeddings.create(model=BGE_LARGE, input="same", encoding_format="float")
    assert len(bge.data[0].embedding) == 1024
    assert bge.usage.prompt_tokens == 1


def test_embeddings_ignore_encoding_format(fake_together: FakeTogether) -> None:
    import httpx

    resp = httpx.post(
        fake_together.base_url + "/embeddings",
        headers=AUTH,
        json={"model": M2_BERT, "input": "x", "encoding_format": "base64"},
    )
    assert resp.status_code == 200
    assert isinstance(resp.json()["data"][0]["embedding"], list)  # quirk Q5: floats regardless


@pytest.mark.parametrize(("extra", "named"), [({"user": "u-1"}, "user"), ({"dimensions": 16}, "dimensions")])
def test_embeddings_refuse_user_and_dimensions(fake_together: FakeTogether, extra: dict[str, Any], named: str) -> None:
    import httpx

    resp = httpx.post(
        fake_together.base_url + "/embeddings", headers=AUTH, json={"model": M2_BERT, "input": "x", **extra}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == f"Unrecognized request arguments supplied: {named}"


def test_embeddings_errors(fake_together: FakeTogether) -> None:
    client = sdk(fake_together)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=M2_BERT, input=[])
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nobody/nothing", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=CHAT, input="x")


def test_every_request_is_recorded(fake_together: FakeTogether) -> None:
    sdk(fake_together).embeddings.create(model=M2_BERT, input="x", encoding_format="float")
    request = fake_together.last_request
    assert (request.method, request.path) == ("POST", "/v1/embeddings")
    assert request.api_key == DEFAULT_API_KEY
    assert request.json == {"model": M2_BERT, "input": "x", "encoding_format": "float"}
    assert request.headers["content-type"] == "application/json"
    assert fake_together.requests_to("/v1/embeddings") == [request]


def test_fail_next_with_retry_after_then_recovers(fake_together: FakeTogether) -> None:
    fake_together.fail_next(429, retry_after=2, times=2, path="/v1/embeddings")
    client = sdk(fake_together)
    client.models.with_raw_response.list()  # another path: not consumed
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            client.embeddings.create(model=M2_BERT, input="x")
        assert caught.value.response.headers["retry-after"] == "2"
    assert client.embeddings.create(model=M2_BERT, input="x").data


async def test_cut_stream_aborts_after_k_events(fake_together: FakeTogether) -> None:
    fake_together.cut_stream_after(3)
    seen: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake_together.base_url + "/chat/completions",
            headers=AUTH,
            json={"model": CHAT, "messages": [{"role": "user", "content": "a b c d e f g"}], "stream": True},
        ) as resp,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            async for line in resp.content:
                seen.append(line)
    payloads = [line for line in seen if line.startswith(b"data: ")]
    assert len(payloads) == 3 and b"[DONE]" not in b"".join(seen)
    assert fake_together.wait_until(lambda: fake_together.streams_cut == 1)
    assert fake_together.open_streams == 0 and not fake_together.client_disconnected.is_set()


async def test_client_hanging_up_mid_stream_is_seen(fake_together: FakeTogether) -> None:
    fake_together.slow_stream(0.05)
    body = {
        "model": CHAT,
        "messages": [{"role": "user", "content": " ".join(["word"] * 200)}],
        "stream": True,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake_together.base_url + "/chat/completions", headers=AUTH, json=body) as resp,
    ):
        await resp.content.readline()
        assert fake_together.open_streams == 1
    assert fake_together.wait_for_disconnect()
    assert fake_together.wait_until(lambda: fake_together.open_streams == 0)
    assert fake_together.streams_disconnected == 1 and fake_together.streams_completed == 0


@pytest.mark.parametrize("fault", ["stall", "hang"])
async def test_stalls_end_when_the_client_gives_up(fake_together: FakeTogether, fault: str) -> None:
    if fault == "stall":
        fake_together.stall_next(60)
    else:
        fake_together.cut_stream_after(1, hang=True)
    body = {"model": CHAT, "messages": [{"role": "user", "content": "x y z"}], "stream": True}
    with pytest.raises(TimeoutError):
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.3)) as session,
            session.post(fake_together.base_url + "/chat/completions", headers=AUTH, json=body) as resp,
        ):
            await resp.read()
    assert fake_together.wait_for_disconnect()


# ---- the fake's shapes against the real recordings -------------------------------------------

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings" / "together" / "responses"


def keys_of(value: Any) -> Any:
    """The nested key structure of a JSON value (lists: their first element), values ignored."""
    if isinstance(value, dict):
        return {k: keys_of(v) for k, v in value.items()}
    if isinstance(value, list) and value:
        return [keys_of(value[0])]
    return None


def recorded(name: str) -> Any:
    body = json.loads((RECORDINGS / f"{name}.json").read_text())["response"]["body"]
    return [c["__data__"] for c in body] if isinstance(body, list) else body["__data__"]


def test_shapes_match_the_real_recordings(fake_together: FakeTogether) -> None:
    import httpx

    def post(path: str, body: dict[str, Any]) -> Any:
        return httpx.post(fake_together.base_url + path, headers=AUTH, json=body).json()

    hello = [{"role": "user", "content": "Hello, world!"}]
    assert keys_of(post("/chat/completions", {"model": CHAT, "messages": hello})) == keys_of(recorded("0c1f45455d3b"))
    tools = post("/chat/completions", {"model": CHAT, "messages": hello, "tools": [WEATHER_TOOL]})
    assert keys_of(tools) == keys_of(recorded("6857b19d3f0a"))
    prompt = {"model": CHAT, "prompt": "Roses are red"}
    assert keys_of(post("/completions", prompt)) == keys_of(recorded("565b1072cb9d"))
    embedded = post("/embeddings", {"model": M2_BERT, "input": ["a", "b"]})
    assert keys_of(embedded) == keys_of(recorded("432a346b2ed8"))


async def test_stream_shapes_match_the_real_recordings(fake_together: FakeTogether) -> None:
    async def chunks(path: str, body: dict[str, Any]) -> list[Any]:
        return [json.loads(e) for e in (await sse_events(fake_together, path, {**body, "stream": True}))[:-1]]

    hello = {"model": CHAT, "messages": [{"role": "user", "content": "Hello, world!"}]}
    text, real_text = await chunks("/chat/completions", hello), recorded("6730dcde0b73")
    assert [keys_of(text[0]), keys_of(text[-1])] == [keys_of(real_text[0]), keys_of(real_text[-1])]
    calls, real_calls = await chunks("/chat/completions", {**hello, "tools": [WEATHER_TOOL]}), recorded("894fdacb1cfa")
    assert [keys_of(c) for c in calls[:3]] == [keys_of(c) for c in real_calls[:3]]
    assert keys_of(calls[-1]) == keys_of(real_calls[-1])
    completion = await chunks("/completions", {"model": CHAT, "prompt": "Roses are red", "max_tokens": 50})
    real_completion = recorded("511eb1b92e34")
    assert [keys_of(completion[0]), keys_of(completion[-1])] == [
        keys_of(real_completion[0]),
        keys_of(real_completion[-1]),
    ]
