"""llama-stack's test_tool_responses.py, the cases with client-executed function tools, replayed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from test_plan_basic import text_of

from conftest import TEXT_MODEL

SF_WEATHER: list[Any] = [{
    "type": "function", "name": "get_weather", "description": "Get current temperature for a given location.",
    "parameters": {"additionalProperties": False, "properties": {"location": {
        "description": "City and country e.g. Bogotá, Colombia", "type": "string"}},
        "required": ["location"], "type": "object"},
}]  # fmt: skip
_CITY = {"type": "object", "properties": {"location": {"type": "string",
                                                       "description": "The city name (e.g., 'New York', 'London')"}}}
WEATHER_AND_TIME: list[Any] = [
    {"type": "function", "name": "get_weather", "description": "Get weather information for a specified location",
     "parameters": _CITY},
    {"type": "function", "name": "get_time", "description": "Get current time for a specified location",
     "parameters": _CITY},
]  # fmt: skip
SCREENSHOT = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAADIAAAAyCAIAAACRXR/mAAAApklEQVR4nO2YsQ2AMBADnV8qC/"
              "FTZSEyVSiCCa"
              "KiAhe+DqU5vZBluezbhhu1tftnz/zlNQSdemYIOuG6lpQTppaaE4AyxlBzwuOXF3GqrYWgE65rSTlhaqk5AShO+YVTnjjlSXfKn0ilV"
              "wg6wSkPd3niLk/c5Rfu8sQpT9zlSfViE99fAi9evdikF5uJuzzxYrPwLk+8yxPv8qR7l4/vL4EXr6K7/AGZuvY6STxy/gAAAABJRU5E"
              "rkJggg==")  # fmt: skip
TOOL_ID = "test_tool_responses.py::{test}[{client}-{model}]"


def calls_of(response: Any) -> list[Any]:
    return [o for o in response.output if o.type == "function_call"]


def test_response_non_streaming_custom_tool(compat_for: Callable[[str], Any]) -> None:
    client = compat_for(TOOL_ID.format(test="test_response_non_streaming_custom_tool", client="{client}",
                                       model="txt=openai/gpt-4o-sf_weather"))  # fmt: skip
    response = client.responses.create(model=TEXT_MODEL, input="What's the weather like in San Francisco?",
                                       tools=SF_WEATHER, stream=False)  # fmt: skip
    assert len(response.output) == 1
    call = response.output[0]
    assert call.type == "function_call" and call.status == "completed" and call.name == "get_weather"


def test_response_function_call_ordering_1(compat_for: Callable[[str], Any]) -> None:
    """The question is sent again with the tool's output, continuing the stored conversation."""
    client = compat_for(TOOL_ID.format(test="test_response_function_call_ordering_1", client="{client}",
                                       model="txt=openai/gpt-4o-sf_weather"))  # fmt: skip
    question = "What's the weather like in San Francisco?"
    asked = client.responses.create(model=TEXT_MODEL, input=question, tools=SF_WEATHER, stream=False)
    assert len(asked.output) == 1 and asked.output[0].type == "function_call"
    inputs = [{"role": "user", "content": question},
              {"type": "function_call_output", "output": "It is raining.", "call_id": asked.output[0].call_id}]
    answered = client.responses.create(model=TEXT_MODEL, input=inputs, tools=SF_WEATHER, stream=False,
                                       previous_response_id=asked.id)  # fmt: skip
    assert len(answered.output) == 1 and "rain" in text_of(answered).lower()


def test_response_function_call_ordering_2(compat_for: Callable[[str], Any]) -> None:
    """Stateless: the calls and their outputs are sent back as items, outputs after all calls."""
    client = compat_for(TOOL_ID.format(test="test_response_function_call_ordering_2", client="{client}",
                                       model="txt=openai/gpt-4o"))  # fmt: skip
    inputs: list[Any] = [{"role": "user", "content": "Is the weather better in San Francisco or Los Angeles?"}]
    asked = client.responses.create(model=TEXT_MODEL, input=inputs, tools=SF_WEATHER, stream=False)
    calls = [c for c in calls_of(asked) if c.status == "completed" and c.name == "get_weather"]
    assert len(calls) == 2
    inputs += [c.model_dump(exclude_none=True) if hasattr(c, "model_dump") else c for c in calls]
    for call in calls:
        weather = "It is cloudy." if "Los Angeles" in call.arguments else "It is raining."
        inputs.append({"type": "function_call_output", "output": weather, "call_id": call.call_id})
    answered = client.responses.create(model=TEXT_MODEL, input=inputs, tools=SF_WEATHER, stream=False)
    assert len(answered.output) == 1 and "Los Angeles" in text_of(answered)


def _tool_output_round_trip(client: Any, question: str, tools: list[Any], output: list[Any]) -> str:
    asked = client.responses.create(model=TEXT_MODEL, input=question, tools=tools)
    call = calls_of(asked)[0]
    answered = client.responses.create(model=TEXT_MODEL, tools=tools, previous_response_id=asked.id, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": output}])  # fmt: skip
    return text_of(answered)


def test_function_call_output_list_text(compat_for: Callable[[str], Any]) -> None:
    client = compat_for(TOOL_ID.format(test="test_function_call_output_list_text", client="{client}",
                                       model="txt=openai/gpt-4o"))  # fmt: skip
    text = _tool_output_round_trip(client, "What is the weather in Paris?", SF_WEATHER,
                                   [{"type": "input_text", "text": "It is sunny and 22 degrees Celsius in Paris."}])
    assert "sunny" in text.lower() and "22" in text


def test_function_call_output_list_text_multi_block(compat_for: Callable[[str], Any]) -> None:
    client = compat_for(TOOL_ID.format(test="test_function_call_output_list_text_multi_block", client="{client}",
                                       model="txt=openai/gpt-4o"))  # fmt: skip
    text = _tool_output_round_trip(client, "What is the weather in London?", SF_WEATHER, [
        {"type": "input_text", "text": "Current conditions: overcast skies."},
        {"type": "input_text", "text": "Temperature: 15 degrees Celsius."}])  # fmt: skip
    assert "overcast" in text.lower() and "15" in text


def test_function_call_output_list_image(compat_for: Callable[[str], Any]) -> None:
    client = compat_for(TOOL_ID.format(test="test_function_call_output_list_image", client="{client}",
                                       model="vis=openai/gpt-4o"))  # fmt: skip
    tools: list[Any] = [{"type": "function", "name": "capture_screenshot",
                         "description": "Capture a screenshot of the current state of the application.",
                         "parameters": {"additionalProperties": False, "properties": {"url": {
                             "description": "The URL of the page to screenshot", "type": "string"}},
                             "required": ["url"], "type": "object"}}]  # fmt: skip
    text = _tool_output_round_trip(client, "Take a screenshot of example.com and describe what you see.", tools,
                                   [{"type": "input_image", "image_url": SCREENSHOT}])  # fmt: skip
    assert "example" in text.lower()


def test_parallel_tool_calls_with_function_tools(compat_for: Callable[[str], Any]) -> None:
    client = compat_for(TOOL_ID.format(test="test_parallel_tool_calls_with_function_tools", client="{client}",
                                       model="txt=openai/gpt-4o"))  # fmt: skip
    question = "Can you tell me the weather in Paris and the current time?"
    # extra_body: llama-stack-client 0.2 has no such parameter, and the wire is the same
    both = client.responses.create(model=TEXT_MODEL, input=question, tools=WEATHER_AND_TIME,
                                   extra_body={"parallel_tool_calls": True})  # fmt: skip
    assert {c.name for c in calls_of(both)} == {"get_weather", "get_time"}
    one = client.responses.create(model=TEXT_MODEL, input=question, tools=WEATHER_AND_TIME,
                                  extra_body={"parallel_tool_calls": False})  # fmt: skip
    assert len(calls_of(one)) == 1


def test_max_tool_calls_with_function_tools(compat_for: Callable[[str], Any]) -> None:
    """max_tool_calls limits built-in tools only: both function calls come back, the limit is echoed."""
    client = compat_for(TOOL_ID.format(test="test_max_tool_calls_with_function_tools", client="{client}",
                                       model="txt=openai/gpt-4o"))  # fmt: skip
    response = client.responses.create(model=TEXT_MODEL, input="Can you tell me the weather in Paris and the "
                                        "current time?", tools=WEATHER_AND_TIME, extra_body={"max_tool_calls": 1})
    assert [c.name for c in calls_of(response)] == ["get_weather", "get_time"]
    assert json.loads(calls_of(response)[0].arguments) == {"location": "Paris"}
    max_tool_calls = getattr(response, "max_tool_calls", None)
    assert (max_tool_calls if max_tool_calls is not None else response.model_extra["max_tool_calls"]) == 1
