"""Anthropic's Messages API end to end: the official anthropic SDK against `relaystack run` over the fake Together."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from support.stack import Stack

WEATHER = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def last_upstream(stack: Stack) -> dict[str, Any]:
    body = stack.fake.requests_to("/v1/chat/completions")[-1].json
    assert isinstance(body, dict)
    return body


def test_create_answers_in_anthropic_shape(
    stack: Stack, anthropic_client: anthropic.Anthropic, chat_model: str
) -> None:
    message = anthropic_client.messages.create(
        model=chat_model, max_tokens=64, system=[{"type": "text", "text": "Be brief."}], stop_sequences=["###"],
        metadata={"user_id": "u-7"}, extra_body={"temperature": 0.3, "top_p": 0.8, "top_k": 5},
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]}],
    )  # fmt: skip
    assert message.type == "message" and message.role == "assistant" and message.model == chat_model
    assert message.content[0].type == "text" and message.content[0].text == "You said: Hello\nthere"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = last_upstream(stack)
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hello\nthere"}]  # fmt: skip
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"], sent["top_k"], sent["stop"], sent["user"]) == (
        64, 0.3, 0.8, 5, ["###"], "u-7")  # fmt: skip
    assert "stream" not in sent


def test_max_tokens_is_required_and_maps_length(anthropic_client: anthropic.Anthropic, chat_model: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        body = {"model": chat_model, "messages": [{"role": "user", "content": "x"}]}
        anthropic_client.post("/v1/messages", body=body, cast_to=httpx.Response)
    assert bad.value.body == {"type": "error", "error": {"type": "invalid_request_error",
                                                         "message": "max_tokens: field required, an integer >= 1."}}
    cut = anthropic_client.messages.create(model=chat_model, max_tokens=2,
                                           messages=[{"role": "user", "content": "one two three four"}])  # fmt: skip
    assert cut.stop_reason == "max_tokens"


def test_streaming_events_and_the_sdk_helper(anthropic_client: anthropic.Anthropic, chat_model: str) -> None:
    with anthropic_client.messages.stream(model=chat_model, max_tokens=64,
                                          messages=[{"role": "user", "content": "Stream it"}]) as stream:  # fmt: skip
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: Stream it" == final.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0 and final.usage.input_tokens > 0



def test_the_raw_stream_is_anthropics_event_sequence(stack: Stack, chat_model: str) -> None:
    body = {"model": chat_model, "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    answer = httpx.post(f"{stack.base_url}/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=30)
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [block.split("\n") for block in answer.text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    payloads = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert [p["type"] for p in payloads] == names
    assert payloads[-2]["delta"]["stop_reason"] == "end_turn" and payloads[-2]["usage"]["input_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(stack: Stack, anthropic_client: anthropic.Anthropic, chat_model: str,
                             stream: bool) -> None:  # fmt: skip
    question = {"role": "user", "content": "Weather in Lima?"}
    if stream:
        with anthropic_client.messages.stream(model=chat_model, max_tokens=64, tools=[WEATHER],
                                              messages=[question]) as events:  # fmt: skip
            asked = events.get_final_message()
    else:
        asked = anthropic_client.messages.create(model=chat_model, max_tokens=64, tools=[WEATHER], messages=[question])
    assert asked.stop_reason == "tool_use"
    use = asked.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input["city"]  # type: ignore[index]
    answer = anthropic_client.messages.create(
        model=chat_model, max_tokens=64, tools=[WEATHER],
        messages=[question, {"role": "assistant", "content": asked.content},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Fog"}]}],
    )  # fmt: skip
    assert answer.content[0].type == "text" and answer.content[0].text == "The tool said: Fog"
    sent = last_upstream(stack)["messages"]
    assert sent[1]["tool_calls"][0]["id"] == use.id
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "Fog"}


def test_tool_choice_maps_to_chat(stack: Stack, anthropic_client: anthropic.Anthropic, chat_model: str) -> None:
    anthropic_client.messages.create(model=chat_model, max_tokens=64, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather?"}], tool_choice={"type": "tool", "name": "get_weather",
                                                             "disable_parallel_tool_use": True})  # fmt: skip
    sent = last_upstream(stack)
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    function = {"name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}
    assert sent["tools"] == [{"type": "function", "function": function}]


def test_count_tokens_is_a_labelled_estimate_for_a_remote_provider(stack: Stack, anthropic_client: anthropic.Anthropic,
                                                                   chat_model: str) -> None:  # fmt: skip
    before = len(stack.fake.requests_to("/v1/chat/completions"))
    raw = anthropic_client.messages.with_raw_response.count_tokens(
        model=chat_model, messages=[{"role": "user", "content": "x" * 400}], system="Be brief."
    )
    assert raw.headers["x-relaystack-token-count"] == "estimate"
    counted = raw.parse()
    assert 100 <= counted.input_tokens <= 120
    assert len(stack.fake.requests_to("/v1/chat/completions")) == before  # nothing billed upstream


def test_errors_are_anthropic_shaped(stack: Stack, anthropic_client: anthropic.Anthropic, chat_model: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        anthropic_client.messages.create(model="claude-nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    stack.fake.fail_next(429, retry_after=2)
    with pytest.raises(anthropic.RateLimitError) as limited:
        anthropic_client.messages.create(model=chat_model, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert limited.value.body["type"] == "error"  # type: ignore[index]
    assert limited.value.response.headers["retry-after"] == "2"
    with pytest.raises(anthropic.BadRequestError) as server_tool:
        anthropic_client.messages.create(model=chat_model, max_tokens=5, messages=[{"role": "user", "content": "x"}],
                                         tools=[{"type": "web_search_20250305", "name": "web_search"}])  # fmt: skip
    assert "web_search_20250305" in server_tool.value.message


def test_a_broken_upstream_stream_ends_with_an_error_event(stack: Stack, anthropic_client: anthropic.Anthropic,
                                                           chat_model: str) -> None:  # fmt: skip
    stack.fake.cut_stream_after(2)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as broken:
        for event in anthropic_client.messages.create(model=chat_model, max_tokens=64, stream=True,
                                                      messages=[{"role": "user", "content": "a b c d e f g"}]):
            seen.append(event.type)  # fmt: skip
    assert "message_stop" not in seen and "message_delta" not in seen
    assert broken.value.body["error"]["type"] == "api_error"  # type: ignore[index]


@pytest.mark.parametrize("bad", [b"data: {not json\n\n", b'data: {"id":"x","choices":[{"index":0,"delta":"abc"}]}\n\n'],
                         ids=["not json", "wrong shape"])
def test_a_malformed_upstream_event_ends_the_stream_with_an_error_event(
    stack: Stack, anthropic_client: anthropic.Anthropic, chat_model: str, bad: bytes
) -> None:
    def chunk(text: str) -> bytes:
        event = {"id": "chat-bad", "object": "chat.completion.chunk", "created": 1, "model": "up",
                 "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        return b"data: " + json.dumps(event).encode() + b"\n\n"

    stack.fake.stream_raw_next(chunk("Hello"), bad, chunk(" more"),
                               b'data: {"id":"chat-bad","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
                               b"data: [DONE]\n\n")
    seen: list[str] = []
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as broken:
        for event in anthropic_client.messages.create(model=chat_model, max_tokens=64, stream=True,
                                                      messages=[{"role": "user", "content": "hi"}]):
            seen.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                texts.append(event.delta.text)
    assert "message_stop" not in seen and "message_delta" not in seen
    # the event before the bad one may arrive in its block (then it is not sent); none after it ever is
    assert "".join(texts) in ("", "Hello")
    assert broken.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert "stream event" in broken.value.body["error"]["message"]  # type: ignore[index]


def test_the_key_may_come_as_x_api_key_or_bearer(stack: Stack, chat_model: str) -> None:
    body = {"model": chat_model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({"x-api-key": "k1", "anthropic-version": "2023-06-01"}, {"Authorization": "Bearer k2"}):
        answer = httpx.post(f"{stack.base_url}/v1/messages", json=body, headers=headers, timeout=30)
        assert answer.status_code == 200 and answer.json()["type"] == "message"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/responses", {"input": "one two three four five six seven eight", "stream": True}),
    ("/v1/messages", {"max_tokens": 64, "stream": True,
                      "messages": [{"role": "user", "content": "one two three four five six seven eight"}]}),
])  # fmt: skip
def test_a_client_that_hangs_up_cancels_the_upstream_stream(stack: Stack, chat_model: str, path: str,
                                                             body: dict[str, Any]) -> None:  # fmt: skip
    stack.fake.slow_stream(0.2)
    with httpx.stream("POST", f"{stack.base_url}{path}", json={"model": chat_model, **body}, timeout=30) as answer:
        for line in answer.iter_lines():
            if "delta" in line:
                break  # the first delta, then hang up
    assert stack.fake.wait_for_disconnect(timeout=10)
