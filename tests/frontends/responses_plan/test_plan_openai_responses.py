"""llama-stack's test_openai_responses.py::TestOpenAIResponses (and test_responses_errors.py), replayed.

Deliberate differences, asserted the way relaystack answers:
- ``incomplete_details.reason`` is OpenAI's ``max_output_tokens`` (llama-stack says ``length``);
- ``background: true`` is a 400 naming it: relaystack answers every response in its request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai import OpenAI
from streaming import check_sequence, check_structure, only

from conftest import REASONING_MODEL, TEXT_MODEL

CLASS_ID = "test_openai_responses.py::TestOpenAIResponses::{test}[txt=openai/{model}]"
_CITY = {"type": "object", "properties": {"location": {"type": "string",
                                                       "description": "The city name (e.g., 'New York', 'London')"}}}
FUNCTION_TOOLS: Any = [
    {"type": "function", "name": "get_weather", "description": "Get weather information for a specified location",
     "parameters": _CITY},
    {"type": "function", "name": "get_time", "description": "Get current time for a specified location",
     "parameters": _CITY},
]  # fmt: skip
PARIS_AND_LONDON = "What is the weather in Paris and the current time in London?"
ESSAY = "Write a very long and detailed essay about the entire history of the Roman Empire from founding to fall."
ANY = object()  # "echoed as something" (service_tier auto: the provider picks the tier)


def user(text: str) -> Any:
    return [{"role": "user", "content": text}]


@pytest.fixture
def client_for(openai_for: Callable[[str], OpenAI]) -> Callable[..., OpenAI]:
    def make(test: str, model: str = "gpt-4o") -> OpenAI:
        return openai_for(CLASS_ID.format(test=test, model=model))

    return make


def stream_of(client: OpenAI, **kwargs: Any) -> list[Any]:
    events = list(client.responses.create(stream=True, **kwargs))
    check_sequence(events)
    check_structure(events)
    return events


def echoed(response: Any, field: str, wanted: Any) -> None:
    value = getattr(response, field)
    assert value is not None if wanted is ANY else value == wanted, (field, value)


# (llama-stack test, model param, request fields, question, echoed field, echoed value)
SINGLE = [
    ("test_openai_response_with_prompt_cache_key", "gpt-4o", {"prompt_cache_key": "test-cache-key-001"},
     "What is the capital of France?", "prompt_cache_key", "test-cache-key-001"),
    ("test_openai_response_with_truncation_disabled", "gpt-4o", {"truncation": "disabled"},
     "What is the largest ocean on Earth?", "truncation", "disabled"),
    ("test_openai_response_with_top_p", "gpt-4o", {"top_p": 0.9}, "What is the largest ocean on Earth?", "top_p", 0.9),
    ("test_openai_response_with_top_logprobs", "gpt-4o", {"top_logprobs": 3}, "What is the largest ocean on Earth?",
     "top_logprobs", 3),
    ("test_openai_response_with_safety_identifier", "gpt-4o", {"safety_identifier": "user-123-hashed"},
     "What is the capital of Spain?", "safety_identifier", "user-123-hashed"),
    ("test_openai_response_with_service_tier_auto", "gpt-4o", {"service_tier": "auto"}, "What is the speed of light?",
     "service_tier", ANY),
    ("test_openai_response_with_service_tier", "gpt-4o-default", {"service_tier": "default"},
     "What is the speed of light?", "service_tier", "default"),
    ("test_openai_response_with_service_tier", "gpt-4o-priority", {"service_tier": "priority"},
     "What is the speed of light?", "service_tier", "priority"),
    ("test_openai_response_background_false_is_synchronous", "gpt-4o", {"background": False}, "What is 1+1?",
     "background", False),
    ("test_openai_response_incomplete_details_null_when_completed", "gpt-4o", {}, "What is 2+2?",
     "incomplete_details", None),
]  # fmt: skip
STREAMING = [
    ("test_openai_response_with_prompt_cache_key_streaming", "gpt-4o",
     {"prompt_cache_key": "test-cache-key-streaming-001"}, "What is the capital of Germany?", "prompt_cache_key",
     "test-cache-key-streaming-001"),
    ("test_openai_response_with_truncation_disabled_streaming", "gpt-4o", {"truncation": "disabled"},
     "What is the smallest continent?", "truncation", "disabled"),
    ("test_openai_response_with_top_p_streaming", "gpt-4o", {"top_p": 0.8}, "What is the smallest continent?",
     "top_p", 0.8),
    ("test_openai_response_with_top_logprobs_streaming", "gpt-4o", {"top_logprobs": 5},
     "What is the smallest continent?", "top_logprobs", 5),
    ("test_openai_response_with_safety_identifier_streaming", "gpt-4o", {"safety_identifier": "user-456-hashed"},
     "What is the capital of Italy?", "safety_identifier", "user-456-hashed"),
    ("test_openai_response_with_service_tier_auto_streaming", "gpt-4o", {"service_tier": "auto"},
     "What is the speed of sound?", "service_tier", ANY),
    ("test_openai_response_with_service_tier_streaming", "gpt-4o-default", {"service_tier": "default"},
     "What is the speed of sound?", "service_tier", "default"),
    ("test_openai_response_with_service_tier_streaming", "gpt-4o-priority", {"service_tier": "priority"},
     "What is the speed of sound?", "service_tier", "priority"),
    ("test_openai_response_with_parallel_tool_calls_disabled_streaming", "gpt-4o",
     {"parallel_tool_calls": False, "tools": FUNCTION_TOOLS}, PARIS_AND_LONDON, "parallel_tool_calls", False),
]  # fmt: skip
CHAINED = [
    ("test_openai_response_with_prompt_cache_key_and_previous_response", "gpt-4o",
     {"prompt_cache_key": "conversation-cache-001"}, ("What is 2+2?", "What is 3+3?"), "prompt_cache_key",
     "conversation-cache-001"),
    ("test_openai_response_with_truncation_and_previous_response", "gpt-4o", {"truncation": "disabled"},
     ("What is 4+4?", "What is 6+6?"), "truncation", "disabled"),
    ("test_openai_response_with_top_p_and_previous_response", "gpt-4o", {"top_p": 0.7},
     ("What is 4+4?", "What is 6+6?"), "top_p", 0.7),
    ("test_openai_response_with_top_logprobs_and_previous_response", "gpt-4o", {"top_logprobs": 3},
     ("What is 4+4?", "What is 6+6?"), "top_logprobs", 3),
    ("test_openai_response_with_safety_identifier_and_previous_response", "gpt-4o",
     {"safety_identifier": "user-789-hashed"}, ("What is 5+5?", "What is 7+7?"), "safety_identifier",
     "user-789-hashed"),
    ("test_openai_response_with_parallel_tool_calls_and_previous_response", "gpt-4o", {"parallel_tool_calls": False},
     ("What is 4+4?", "What is 6+6?"), "parallel_tool_calls", False),
    ("test_openai_response_with_service_tier_auto_and_previous_response", "gpt-4o", {"service_tier": "auto"},
     ("What is 8+8?", "What is 9+9?"), "service_tier", ANY),
    ("test_openai_response_with_service_tier_and_previous_response", "gpt-4o-default", {"service_tier": "default"},
     ("What is 8+8?", "What is 9+9?"), "service_tier", "default"),
    ("test_openai_response_with_service_tier_and_previous_response", "gpt-4o-priority", {"service_tier": "priority"},
     ("What is 8+8?", "What is 9+9?"), "service_tier", "priority"),
]  # fmt: skip


def _ids(cases: list[Any]) -> list[str]:
    return [f"{case[0]}[{case[1]}]" for case in cases]


@pytest.mark.parametrize(("test", "model", "fields", "question", "field", "wanted"), SINGLE, ids=_ids(SINGLE))
def test_request_fields_are_echoed(client_for: Callable[..., OpenAI], test: str, model: str, fields: dict[str, Any],
                                   question: str, field: str, wanted: Any) -> None:  # fmt: skip
    response = client_for(test, model).responses.create(model=TEXT_MODEL, input=user(question), **fields)
    assert response.id.startswith("resp_") and response.status == "completed" and response.output_text.strip()
    echoed(response, field, wanted)


@pytest.mark.parametrize(("test", "model", "fields", "question", "field", "wanted"), STREAMING, ids=_ids(STREAMING))
def test_request_fields_are_echoed_in_streams(client_for: Callable[..., OpenAI], test: str, model: str,
                                              fields: dict[str, Any], question: str, field: str,
                                              wanted: Any) -> None:  # fmt: skip
    events = stream_of(client_for(test, model), model=TEXT_MODEL, input=user(question), **fields)
    echoed(only(events, "response.created").response, field, wanted)
    echoed(only(events, "response.completed").response, field, wanted)


@pytest.mark.parametrize(("test", "model", "fields", "questions", "field", "wanted"), CHAINED, ids=_ids(CHAINED))
def test_request_fields_are_echoed_along_a_conversation(client_for: Callable[..., OpenAI], test: str, model: str,
                                                        fields: dict[str, Any], questions: tuple[str, str],
                                                        field: str, wanted: Any) -> None:  # fmt: skip
    client = client_for(test, model)
    first = client.responses.create(model=TEXT_MODEL, input=user(questions[0]), **fields)
    echoed(first, field, wanted)
    second = client.responses.create(model=TEXT_MODEL, input=user(questions[1]), previous_response_id=first.id,
                                     **fields)  # fmt: skip
    echoed(second, field, wanted)
    assert second.output_text.strip() and second.previous_response_id == first.id


def test_openai_response_with_max_output_tokens(client_for: Callable[..., OpenAI]) -> None:
    response = client_for("test_openai_response_with_max_output_tokens").responses.create(
        model=TEXT_MODEL, input=user("What are the 5 Ds of dodgeball?"), max_output_tokens=100)
    assert response.output_text.strip() and response.max_output_tokens == 100


def test_openai_response_with_small_max_output_tokens(client_for: Callable[..., OpenAI]) -> None:
    response = client_for("test_openai_response_with_small_max_output_tokens").responses.create(
        model=TEXT_MODEL, max_output_tokens=20, input=user(
            "Write a detailed essay about the history of artificial intelligence, covering the past 70 years."))
    assert response.max_output_tokens == 20 and response.output_text.strip()
    assert response.usage is not None and 0 < response.usage.output_tokens <= 25


def test_openai_response_max_output_tokens_below_minimum(client_for: Callable[..., OpenAI]) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client_for("test_openai_response_max_output_tokens_below_minimum").responses.create(
            model=TEXT_MODEL, input=user("Hello"), max_output_tokens=15)
    assert "16" in bad.value.message


def test_openai_response_incomplete_details_length(client_for: Callable[..., OpenAI]) -> None:
    response = client_for("test_openai_response_incomplete_details_length").responses.create(
        model=TEXT_MODEL, input=user(ESSAY), max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"


def test_openai_response_incomplete_details_length_streaming(client_for: Callable[..., OpenAI]) -> None:
    client = client_for("test_openai_response_incomplete_details_length_streaming")
    events = stream_of(client, model=TEXT_MODEL, input=user(ESSAY), max_output_tokens=16)
    final = only(events, "response.incomplete").response
    assert final.incomplete_details is not None and final.incomplete_details.reason == "max_output_tokens"


def test_openai_response_with_parallel_tool_calls_enabled(client_for: Callable[..., OpenAI]) -> None:
    response = client_for("test_openai_response_with_parallel_tool_calls_enabled").responses.create(
        model=TEXT_MODEL, input=PARIS_AND_LONDON, tools=FUNCTION_TOOLS, parallel_tool_calls=True)
    assert response.parallel_tool_calls is True
    assert sorted(o.name for o in response.output if o.type == "function_call") == ["get_time", "get_weather"]


def test_openai_response_with_parallel_tool_calls_disabled(client_for: Callable[..., OpenAI]) -> None:
    response = client_for("test_openai_response_with_parallel_tool_calls_disabled").responses.create(
        model=TEXT_MODEL, input=PARIS_AND_LONDON, tools=FUNCTION_TOOLS, parallel_tool_calls=False)
    assert response.parallel_tool_calls is False
    assert len([o for o in response.output if o.type == "function_call"]) == 1


@pytest.mark.parametrize(("test", "question", "stream_options", "stream"), [
    ("test_openai_response_streaming_includes_usage", "What is the capital of France?", None, True),
    ("test_openai_response_with_stream_options_includes_usage", "What is the capital of Germany?",
     {"include_obfuscation": True}, True),
    ("test_openai_response_with_stream_options_non_streaming", "What is the capital of Italy?",
     {"include_obfuscation": True}, False),
])  # fmt: skip
def test_usage_is_always_reported(client_for: Callable[..., OpenAI], test: str, question: str,
                                  stream_options: Any, stream: bool) -> None:  # fmt: skip
    client = client_for(test)
    extra = {"stream_options": stream_options} if stream_options else {}
    if stream:
        response = only(stream_of(client, model=TEXT_MODEL, input=user(question), **extra), "response.completed")
        response = response.response
    else:
        response = client.responses.create(model=TEXT_MODEL, input=user(question), **extra)
    assert response.status == "completed" and response.output_text.strip()
    assert response.usage is not None and response.usage.output_tokens > 0 and response.usage.total_tokens > 0


def test_openai_response_with_stream_options_and_previous_response(client_for: Callable[..., OpenAI]) -> None:
    client = client_for("test_openai_response_with_stream_options_and_previous_response")
    first = client.responses.create(model=TEXT_MODEL, input=user("What is 3+3?"))
    events = stream_of(client, model=TEXT_MODEL, input=user("What is 5+5?"), previous_response_id=first.id,
                       stream_options={"include_obfuscation": True})  # fmt: skip
    final = only(events, "response.completed").response
    assert final.output_text.strip() and final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "streaming"])
def test_openai_response_reasoning_effort(client_for: Callable[..., OpenAI], effort: str, stream: bool) -> None:
    test = "test_openai_response_reasoning_effort" + ("_streaming" if stream else "")
    client = client_for(test, f"o4-mini-{effort}")
    kwargs: Any = {"model": REASONING_MODEL, "input": "What is 2+2?", "reasoning": {"effort": effort}}
    response = only(stream_of(client, **kwargs), "response.completed").response if stream else (
        client.responses.create(**kwargs))  # fmt: skip
    assert "4" in response.output_text and response.reasoning is not None and response.reasoning.effort == effort


def test_background_is_a_clear_400(client_for: Callable[..., OpenAI]) -> None:
    """llama-stack's test_openai_response_background_returns_queued expects a queued response."""
    client = client_for("test_openai_response_background_returns_queued")
    for extra in ({}, {"stream": True}):
        with pytest.raises(openai.BadRequestError) as bad:
            client.responses.create(model=TEXT_MODEL, input="What is 2+2?", background=True, **extra)
        assert "background" in bad.value.message


def test_openai_response_with_truncation_auto_error(client_for: Callable[..., OpenAI]) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client_for("test_openai_response_with_truncation_auto_error").responses.create(
            model=TEXT_MODEL, input=user("Hello"), truncation="auto")
    assert "truncation" in bad.value.message


def test_cancel_completed_response_fails(client_for: Callable[..., OpenAI]) -> None:
    client = client_for("test_cancel_completed_response_fails")
    response = client.responses.create(model=TEXT_MODEL, input="Say hello", background=False)
    assert response.status == "completed"
    with pytest.raises(openai.ConflictError):
        client.responses.cancel(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_fake_nonexistent_id")


def test_completed_response_has_no_error(openai_for: Callable[[str], OpenAI]) -> None:
    client = openai_for("test_responses_errors.py::TestResponsesAPIStreamingErrors::"
                        "test_completed_response_has_no_error[txt=openai/gpt-4o]")  # fmt: skip
    events = stream_of(client, model=TEXT_MODEL, input="Say 'hello' and nothing else.")
    final = only(events, "response.completed").response
    assert final.error is None and "hello" in final.output_text.lower()
