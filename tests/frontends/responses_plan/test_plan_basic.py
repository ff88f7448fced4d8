"""llama-stack's test_basic_responses.py (and test_file_search.py::test_response_text_format), replayed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from openai import OpenAI
from streaming import check_sequence, only

from conftest import TEXT_MODEL

BASIC = {
    "earth": ("Which planet do humans live on?", "earth"),
    "saturn": ("Which planet has rings around it with a name starting with letter S?", "saturn"),
}
LLAMA_IMAGE = "https://upload.wikimedia.org/wikipedia/commons/f/f7/Llamas%2C_Vernagt-Stausee%2C_Italy.jpg"
BASIC_ID = "test_basic_responses.py::{test}[{client}-txt=openai/gpt-4o-{case}]"


def text_of(response: Any) -> str:
    """``output_text`` for both SDKs (llama-stack-client 0.2 has no such property)."""
    text = getattr(response, "output_text", None)
    if isinstance(text, str):
        return text
    return "".join(part.text for item in response.output if item.type == "message" for part in item.content
                   if part.type == "output_text")  # fmt: skip


def usage_of(response: Any) -> tuple[int, int, int]:
    """(input, output, total) tokens; llama-stack-client 0.2 keeps ``usage`` as a plain dict."""
    usage = response.usage
    if isinstance(usage, dict):
        return usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]
    return usage.input_tokens, usage.output_tokens, usage.total_tokens


@pytest.mark.parametrize("case", BASIC)
def test_response_non_streaming_basic(compat_for: Callable[[str], Any], case: str) -> None:
    question, expected = BASIC[case]
    client = compat_for(BASIC_ID.format(test="test_response_non_streaming_basic", client="{client}", case=case))
    response = client.responses.create(model=TEXT_MODEL, input=question, stream=False)
    assert expected in text_of(response).lower()
    tokens_in, tokens_out, total = usage_of(response)
    assert tokens_in > 0 and tokens_out > 0 and total == tokens_in + tokens_out
    assert text_of(client.responses.retrieve(response.id)) == text_of(response)
    follow = client.responses.create(model=TEXT_MODEL, input="Repeat your previous response in all caps.",
                                     previous_response_id=response.id)  # fmt: skip
    assert expected.upper() in text_of(follow).strip()


@pytest.mark.parametrize("case", BASIC)
def test_response_streaming_basic(compat_for: Callable[[str], Any], case: str) -> None:
    question, expected = BASIC[case]
    client = compat_for(BASIC_ID.format(test="test_response_streaming_basic", client="{client}", case=case))
    events = list(client.responses.create(model=TEXT_MODEL, input=question, stream=True))
    check_sequence(events)
    assert events[0].response.status == "in_progress"
    final = only(events, "response.completed").response
    assert final.status == "completed" and expected in text_of(final).lower()
    tokens_in, tokens_out, total = usage_of(final)
    assert tokens_in > 0 and tokens_out > 0 and total == tokens_in + tokens_out
    assert text_of(client.responses.retrieve(final.id)) == text_of(final)


@pytest.mark.parametrize("case", BASIC)
def test_response_streaming_incremental_content(compat_for: Callable[[str], Any], case: str) -> None:
    question, expected = BASIC[case]
    client = compat_for(BASIC_ID.format(test="test_response_streaming_incremental_content", client="{client}",
                                        case=case))  # fmt: skip
    events = list(client.responses.create(model=TEXT_MODEL, input=question, stream=True))
    check_sequence(events)
    types = [e.type for e in events]
    created, completed = types.index("response.created"), types.index("response.completed")
    assert text_of(events[created].response) == ""
    deltas = [i for i, t in enumerate(types) if t == "response.output_text.delta"]
    assert len(deltas) > 1 and all(created < i < completed for i in deltas)
    streamed = "".join(events[i].delta for i in deltas)
    assert streamed.strip() == text_of(events[completed].response).strip() and expected in streamed.lower()


def test_response_non_streaming_multi_turn(compat_for: Callable[[str], Any]) -> None:
    client = compat_for(BASIC_ID.format(test="test_response_non_streaming_multi_turn", client="{client}",
                                        case="earth"))  # fmt: skip
    previous = None
    for question, expected in [("Which planet do humans live on?", "earth"),
                               ("What is the name of the planet from your previous response?", "earth")]:
        response = client.responses.create(model=TEXT_MODEL, input=question, previous_response_id=previous)
        previous = response.id
        assert expected in text_of(response).lower()


def test_response_non_streaming_image(compat_for: Callable[[str], Any]) -> None:
    client = compat_for("test_basic_responses.py::test_response_non_streaming_image[{client}-vis=openai/gpt-4o-"
                        "llama_image]")  # fmt: skip
    image_input = [{"role": "user", "content": [
        {"type": "input_text", "text": "Identify the type of animal in this image."},
        {"type": "input_image", "image_url": LLAMA_IMAGE}]}]  # fmt: skip
    assert "llama" in text_of(client.responses.create(model=TEXT_MODEL, input=image_input)).lower()


def test_response_non_streaming_multi_turn_image(compat_for: Callable[[str], Any]) -> None:
    client = compat_for("test_basic_responses.py::test_response_non_streaming_multi_turn_image[{client}-"
                        "vis=openai/gpt-4o-llama_image_understanding]")  # fmt: skip
    first = [{"role": "user", "content": [
        {"type": "input_text", "text": "What type of animal is in this image? Please respond with a single word that "
                                       "starts with the letter 'L'."},
        {"type": "input_image", "image_url": LLAMA_IMAGE}]}]  # fmt: skip
    previous = None
    for turn, expected in [(first, "llama"), ("What country do you find this animal primarily in? What continent?",
                                              "peru")]:  # fmt: skip
        response = client.responses.create(model=TEXT_MODEL, input=turn, previous_response_id=previous)
        previous = response.id
        assert expected in text_of(response).lower()


def test_include_logprobs_non_streaming(openai_for: Callable[[str], OpenAI]) -> None:
    client = openai_for("test_basic_responses.py::test_include_logprobs_non_streaming[txt=openai/gpt-4o]")
    plain = client.responses.create(model=TEXT_MODEL, input="Which planet do humans live on?")
    assert len(plain.output) == 1 and plain.output[0].content[0].logprobs == []  # type: ignore[union-attr]
    with_logprobs = client.responses.create(model=TEXT_MODEL, input="Which planet do humans live on?",
                                            include=["message.output_text.logprobs"])  # fmt: skip
    messages = [o for o in with_logprobs.output if o.type == "message"]
    assert len(messages) == 1 and messages[0].content[0].logprobs  # type: ignore[union-attr]


def test_include_logprobs_streaming(openai_for: Callable[[str], OpenAI]) -> None:
    client = openai_for("test_basic_responses.py::test_include_logprobs_streaming[txt=openai/gpt-4o]")
    events = list(client.responses.create(model=TEXT_MODEL, input="Which planet do humans live on?", stream=True,
                                          include=["message.output_text.logprobs"]))  # fmt: skip
    for event in events:
        if event.type in ("response.output_text.delta", "response.output_text.done"):
            assert event.logprobs is not None
    done = only(events, "response.output_item.done")
    assert done.item.content[0].logprobs
    final = only(events, "response.completed").response
    assert next(o.content[0].logprobs for o in final.output if o.type == "message")


def test_include_logprobs_with_function_tools(openai_for: Callable[[str], OpenAI]) -> None:
    client = openai_for("test_basic_responses.py::test_include_logprobs_with_function_tools[txt=openai/gpt-4o]")
    tools: Any = [{"type": "function", "name": "get_weather",
                   "description": "Get weather information for a specified location",
                   "parameters": {"type": "object", "properties": {"location": {
                       "type": "string", "description": "The city name (e.g., 'New York', 'London')"}}}}]  # fmt: skip
    response = client.responses.create(model=TEXT_MODEL, input="What is the weather in Paris?", tools=tools,
                                       include=["message.output_text.logprobs"])  # fmt: skip
    assert len(response.output) == 1
    call = response.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"


@pytest.mark.parametrize("text_format", [{"type": "text"}, {"type": "json_schema", "name": "capitals", "schema": {
    "type": "object", "properties": {"capital": {"type": "string"}}}}], ids=["text_format0", "text_format1"])
def test_response_text_format(openai_for: Callable[[str], OpenAI], text_format: dict[str, Any],
                              request: pytest.FixtureRequest) -> None:  # fmt: skip
    case = request.node.callspec.id
    client = openai_for(f"test_file_search.py::test_response_text_format[openai_client-txt=openai/gpt-4o-{case}]")
    response = client.responses.create(model=TEXT_MODEL, input="What is the capital of France?",
                                       text={"format": text_format})  # type: ignore[typeddict-item]  # fmt: skip
    assert "paris" in response.output_text.lower()
    if text_format["type"] == "json_schema":
        assert "paris" in __import__("json").loads(response.output_text)["capital"].lower()
