"""The Responses API end to end: the official openai SDK against `relaystack run` over the fake Together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.server import start_server, write_config
from support.stack import Stack, issue_config

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def upstream_bodies(stack: Stack) -> list[dict[str, Any]]:
    return [r.json for r in stack.fake.requests_to("/v1/chat/completions")]


def test_a_string_input_is_answered_stored_and_counted(stack: Stack, openai_client: OpenAI, chat_model: str) -> None:
    response = openai_client.responses.create(model=chat_model, input="Hello there", instructions="Be brief.")
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.model == chat_model
    assert response.output_text == "You said: Hello there"
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens == 4
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    sent = upstream_bodies(stack)[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert "store" not in sent and "instructions" not in sent
    assert openai_client.responses.retrieve(response.id).output_text == response.output_text


def test_previous_response_id_continues_the_conversation_without_old_instructions(
    stack: Stack, openai_client: OpenAI, chat_model: str
) -> None:
    first = openai_client.responses.create(model=chat_model, input="My name is Ada", instructions="Old rules.")
    second = openai_client.responses.create(model=chat_model, input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert upstream_bodies(stack)[-1]["messages"] == [
        {"role": "user", "content": "My name is Ada"},
        {"role": "assistant", "content": "You said: My name is Ada"},
        {"role": "user", "content": "What is my name?"},
    ]
    items = openai_client.responses.input_items.list(second.id, order="asc").data
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"), ("message", "assistant"), ("message", "user"),
    ]  # fmt: skip
    first_page = openai_client.responses.input_items.list(second.id, limit=2)
    assert [i.role for i in first_page.data] == ["user", "assistant"] and first_page.has_more is True
    rest = openai_client.responses.input_items.list(second.id, limit=2, after=first_page.data[-1].id)
    assert [i.role for i in rest.data] == ["user"] and rest.has_more is False


def test_function_tool_round_trip(stack: Stack, openai_client: OpenAI, chat_model: str) -> None:
    asked = openai_client.responses.create(model=chat_model, input="Weather in Paris?", tools=[WEATHER])
    assert [item.type for item in asked.output] == ["function_call"]
    call = asked.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments)["city"]
    sent = upstream_bodies(stack)[-1]
    assert sent["tools"] == [{"type": "function", "function": WEATHER}] and sent["parallel_tool_calls"] is True
    answered = openai_client.responses.create(
        model=chat_model, previous_response_id=asked.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 22 C"}],
    )  # fmt: skip
    assert answered.output_text == "The tool said: Sunny, 22 C"
    messages = upstream_bodies(stack)[-1]["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny, 22 C"}


def test_a_stateless_round_trip_sends_the_items_back(stack: Stack, openai_client: OpenAI, chat_model: str) -> None:
    asked = openai_client.responses.create(model=chat_model, input="Weather in Oslo?", tools=[WEATHER], store=False)
    assert asked.store is False
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(asked.id)
    history: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}, *asked.output]
    history.append({"type": "function_call_output", "call_id": asked.output[0].call_id, "output": "Snow"})
    answered = openai_client.responses.create(model=chat_model, input=history, tools=[WEATHER], store=False)
    assert answered.output_text == "The tool said: Snow"


def test_streaming_events_come_in_order_with_sequence_numbers(openai_client: OpenAI, chat_model: str) -> None:
    events = list(openai_client.responses.create(model=chat_model, input="Stream this please", stream=True))
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]  # fmt: skip
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas == final.output_text == "You said: Stream this please"
    assert final.usage is not None and final.usage.output_tokens > 0
    assert events[0].response.id == final.id  # type: ignore[union-attr]
    assert events[0].response.model_dump() == events[1].response.model_dump()  # type: ignore[union-attr]
    assert openai_client.responses.retrieve(final.id).model_dump() == final.model_dump()  # stored as streamed


def test_the_sdk_stream_helper_accumulates_text_and_tool_calls(openai_client: OpenAI, chat_model: str) -> None:
    with openai_client.responses.stream(model=chat_model, input="Hi streamer") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "You said: Hi streamer"
    with openai_client.responses.stream(model=chat_model, input="Weather in Rome?", tools=[WEATHER]) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    call = final.output[0]
    assert call.type == "function_call" and json.loads(call.arguments)["city"]


def test_a_broken_upstream_stream_ends_with_response_failed(
    stack: Stack, openai_client: OpenAI, chat_model: str
) -> None:
    stack.fake.cut_stream_after(2)
    events = list(openai_client.responses.create(model=chat_model, input="one two three four five six", stream=True))
    assert events[-1].type == "response.failed"
    assert not [e for e in events if e.type == "response.completed"]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    assert openai_client.responses.retrieve(failed.id).status == "failed"


def _chunk(text: str) -> bytes:
    event = {"id": "chat-bad", "object": "chat.completion.chunk", "created": 1, "model": "up",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


@pytest.mark.parametrize("bad", [b"data: {not json\n\n", b'data: {"id":"x","choices":"abc"}\n\n'],
                         ids=["not json", "wrong shape"])
def test_a_malformed_upstream_event_ends_the_stream_with_response_failed(
    stack: Stack, openai_client: OpenAI, chat_model: str, bad: bytes
) -> None:
    stack.fake.stream_raw_next(_chunk("Hello"), _chunk(" there"), bad, _chunk(" more"),
                               b'data: {"id":"chat-bad","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
                               b"data: [DONE]\n\n")
    events = list(openai_client.responses.create(model=chat_model, input="Hello there", stream=True))
    assert events[-1].type == "response.failed"
    assert not [e for e in events if e.type == "response.completed"]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.message.startswith("The upstream sent a") and "stream event" in failed.error.message
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    # the events before the bad one may arrive in its block (then none is sent); none after it ever is
    assert "more" not in deltas and deltas in ("", "Hello", "Hello there")
    assert openai_client.responses.retrieve(failed.id).status == "failed"


def test_a_broken_stream_under_a_json_answer_is_an_error_status(stack: Stack, openai_client: OpenAI,
                                                                chat_model: str) -> None:  # fmt: skip
    stack.fake.cut_stream_after(2)
    with pytest.raises(openai.APIStatusError) as failed:
        openai_client.responses.create(model=chat_model, input="one two three four five six")
    assert failed.value.status_code == 502


def test_length_makes_the_response_incomplete(openai_client: OpenAI, chat_model: str) -> None:
    words = "a b c d e f g h i j k l m n o p q r s t u v w x y z"
    response = openai_client.responses.create(model=chat_model, input=words, max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 16
    events = list(openai_client.responses.create(model=chat_model, input="a b c d e f g h i j k l m n o p q r s t u",
                                                 max_output_tokens=16, stream=True))  # fmt: skip
    assert events[-1].type == "response.incomplete"


def test_structured_output_and_sampling_fields_pass_on(stack: Stack, openai_client: OpenAI, chat_model: str) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response = openai_client.responses.create(
        model=chat_model, input="City?", temperature=0.2, top_p=0.9, max_output_tokens=64, top_logprobs=2,
        text={"format": {"type": "json_schema", "name": "City", "schema": schema, "strict": True}},
        metadata={"team": "blue"}, user="u-1", safety_identifier="s-1",
    )  # fmt: skip
    sent = upstream_bodies(stack)[-1]
    assert sent["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "City", "schema": schema, "strict": True}}  # fmt: skip
    assert (sent["temperature"], sent["top_p"], sent["max_completion_tokens"]) == (0.2, 0.9, 64)
    assert (sent["logprobs"], sent["top_logprobs"], sent["user"], sent["safety_identifier"]) == (True, 2, "u-1", "s-1")
    assert "metadata" not in sent
    assert (response.temperature, response.top_p, response.metadata) == (0.2, 0.9, {"team": "blue"})


@pytest.mark.parametrize(("choice", "sent"), [
    ("required", "required"),
    ("none", "none"),
    ({"type": "function", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
])  # fmt: skip
def test_tool_choice_and_parallel_tool_calls_pass_on(stack: Stack, openai_client: OpenAI, chat_model: str,
                                                     choice: Any, sent: Any) -> None:  # fmt: skip
    openai_client.responses.create(model=chat_model, input="Weather in Paris?", tools=[WEATHER],
                                   tool_choice=choice, parallel_tool_calls=False)  # fmt: skip
    body = upstream_bodies(stack)[-1]
    assert body["tool_choice"] == sent and body["parallel_tool_calls"] is False


def test_json_mode_and_a_tool_choice_without_tools(stack: Stack, openai_client: OpenAI, chat_model: str) -> None:
    openai_client.responses.create(model=chat_model, input="Answer in JSON", text={"format": {"type": "json_object"}})
    assert upstream_bodies(stack)[-1]["response_format"] == {"type": "json_object"}
    openai_client.responses.create(model=chat_model, input="Plain", text={"format": {"type": "text"}})
    assert "response_format" not in upstream_bodies(stack)[-1]
    before = len(upstream_bodies(stack))
    with pytest.raises(openai.BadRequestError) as bad:
        openai_client.responses.create(model=chat_model, input="hi", tool_choice={"type": "function", "name": "f"})
    assert bad.value.param == "tool_choice"
    with pytest.raises(openai.BadRequestError) as hosted:
        openai_client.responses.create(model=chat_model, input="hi", tools=[WEATHER],
                                       tool_choice={"type": "web_search_preview"})  # fmt: skip
    assert "web_search_preview" in hosted.value.message
    assert len(upstream_bodies(stack)) == before  # refused before any upstream call


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"tools": [{"type": "web_search"}]}, "web_search"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "file_search"),
        ({"background": True}, "background"),
        ({"truncation": "auto"}, "truncation"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"include": ["file_search_call.results"]}, "file_search_call.results"),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "reasoning"),
        ({"max_output_tokens": 15}, "max_output_tokens"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_unsupported_features_are_a_400_naming_them(stack: Stack, openai_client: OpenAI, chat_model: str,
                                                    extra: dict[str, Any], named: str) -> None:  # fmt: skip
    before = len(stack.fake.requests_to("/v1/chat/completions"))
    body = {"model": chat_model, "input": "hi", **extra}
    with pytest.raises(openai.BadRequestError) as bad:
        openai_client.post("/responses", body=body, cast_to=httpx.Response)
    assert named in bad.value.message
    assert len(stack.fake.requests_to("/v1/chat/completions")) == before  # nothing went upstream


def test_errors_are_openai_shaped_with_the_right_status(stack: Stack, openai_client: OpenAI, chat_model: str) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.responses.create(model="no-such-model", input="hi")
    assert "no-such-model" in missing.value.message
    stack.fake.fail_next(429, retry_after=3)
    with pytest.raises(openai.RateLimitError) as limited:
        openai_client.responses.create(model=chat_model, input="hi", stream=True)
    assert limited.value.response.headers.get("retry-after") == "3"
    with pytest.raises(openai.BadRequestError) as unknown:
        openai_client.responses.create(model=chat_model, input="hi", previous_response_id="resp_unknown")
    assert unknown.value.code == "previous_response_not_found"


def test_list_and_delete(openai_client: OpenAI, chat_model: str) -> None:
    made = [openai_client.responses.create(model=chat_model, input=f"note {i}").id for i in range(3)]
    listed = openai_client.get("/responses", cast_to=httpx.Response, options={"params": {"limit": 3}}).json()
    assert [r["id"] for r in listed["data"]] == made[::-1]
    assert openai_client.responses.delete(made[0]) is None
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(made[0])
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.delete(made[0])


def test_the_legacy_prefix_serves_the_same_api(stack: Stack, chat_model: str) -> None:
    client = OpenAI(base_url=f"{stack.base_url}/v1/openai/v1", api_key="unused", max_retries=0)
    response = client.responses.create(model=chat_model, input="Hello legacy")
    assert client.responses.retrieve(response.id).output_text == "You said: Hello legacy"


def test_stored_responses_survive_a_restart(tmp_path: Path, fake_together: FakeTogether, chat_model: str) -> None:
    config = write_config(tmp_path / "run.yaml", issue_config())
    env = {"TOGETHER_API_KEY": DEFAULT_API_KEY, "TOGETHER_BASE_URL": fake_together.base_url}
    server = start_server(config, home=tmp_path, env=env)
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
        first = client.responses.create(model=chat_model, input="Remember the word teal")
    finally:
        server.stop()
    server = start_server(config, home=tmp_path, env=env)
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
        assert client.responses.retrieve(first.id).output_text == "You said: Remember the word teal"
        client.responses.create(model=chat_model, input="Which word?", previous_response_id=first.id)
        sent = fake_together.requests_to("/v1/chat/completions")[-1].json
        assert [m["content"] for m in sent["messages"]] == [
            "Remember the word teal", "You said: Remember the word teal", "Which word?"]  # fmt: skip
    finally:
        server.stop()


def test_with_the_inference_store_off_nothing_is_kept(tmp_path: Path, fake_together: FakeTogether,
                                                     chat_model: str) -> None:  # fmt: skip
    config = write_config(tmp_path / "run.yaml", {**issue_config(), "storage": {"inference_store": False}})
    env = {"TOGETHER_API_KEY": DEFAULT_API_KEY, "TOGETHER_BASE_URL": fake_together.base_url}
    server = start_server(config, home=tmp_path, env=env)
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
        response = client.responses.create(model=chat_model, input="Keep nothing")
        assert response.output_text == "You said: Keep nothing" and response.store is False
        with pytest.raises(openai.APIStatusError) as off:
            client.responses.create(model=chat_model, input="And?", previous_response_id=response.id)
        assert off.value.status_code == 501 and "inference_store" in off.value.message
    finally:
        server.stop()
