"""llama-stack v0.7.1's ``tests/integration/inference/test_tools_with_schemas.py``, the 8 cases its run named.

JSON-Schema tools (``$ref``/``$defs``, no properties, several tools, streaming) pass through to
Ollama unchanged. The MCP case is adapted: llama-stack (library mode) listed the tool from a local
MCP server, then made the chat call; relaystack serves no tool runtime, so the test sends the tool
as that server listed it (the recorded request shows it) and checks the chat call, which is
relaystack's part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import TEXT_MODEL, Clients, llama_id

MODULE = "test_tools_with_schemas.py"
TXT = "txt=" + TEXT_MODEL
Make = Callable[[str], Clients]


def function(name: str, parameters: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name}
    if description is not None:
        spec["description"] = description
    spec["parameters"] = parameters
    return {"type": "function", "function": spec}


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **extra}


LOCATION = {"location": {"type": "string", "description": "City name"}}


def chat(c: Clients, client: Any, content: str, tools: list[dict[str, Any]], **extra: Any) -> Any:
    return client.chat.completions.create(model=TEXT_MODEL, messages=[{"role": "user", "content": content}],
                                          tools=tools, **extra)


def test_simple_tool_call(clients: Make) -> None:
    c = clients(llama_id(MODULE, "TestChatCompletionWithTools::test_simple_tool_call", TXT))
    tools = [function("get_weather", obj(LOCATION, required=["location"]), "Get weather for a location")]
    assert chat(c, c.lsc, "What's the weather in San Francisco?", tools) is not None


def test_tool_with_complex_schema(clients: Make) -> None:
    c = clients(llama_id(MODULE, "TestChatCompletionWithTools::test_tool_with_complex_schema", TXT))
    parameters = obj(
        {"flight": {"$ref": "#/$defs/FlightInfo"}, "passenger": {"$ref": "#/$defs/Passenger"}},
        required=["flight", "passenger"],
        **{"$defs": {
            "FlightInfo": obj({"from": {"type": "string"}, "to": {"type": "string"},
                               "date": {"type": "string", "format": "date"}}),
            "Passenger": obj({"name": {"type": "string"}, "age": {"type": "integer"}}),
        }},
    )
    tools = [function("book_flight", parameters, "Book a flight")]
    assert chat(c, c.lsc, "Book a flight from SFO to JFK for John Doe", tools) is not None


def test_openai_chat_completion_with_tools(clients: Make) -> None:
    c = clients(llama_id(MODULE, "TestOpenAICompatibility::test_openai_chat_completion_with_tools",
                         "openai_client", TXT))
    tools = [function("get_weather", obj(LOCATION, required=["location"]), "Get weather information")]
    response = chat(c, c.openai, "What's the weather in Tokyo?", tools)
    assert response is not None and response.choices is not None


def test_openai_format_preserves_complex_schemas(clients: Make) -> None:
    c = clients(llama_id(MODULE, "TestOpenAICompatibility::test_openai_format_preserves_complex_schemas",
                         "openai_client", TXT))
    parameters = obj({"data": {"$ref": "#/$defs/DataObject"}},
                     **{"$defs": {"DataObject": obj({"values": {"type": "array", "items": {"type": "number"}}})}})
    tools = [function("process_data", parameters, "Process structured data")]
    assert chat(c, c.openai, "Process this data", tools) is not None


def test_mcp_tools_in_inference(clients: Make) -> None:
    c = clients(llama_id(MODULE, "TestMCPToolsInChatCompletion::test_mcp_tools_in_inference", TXT))
    calculate = function("calculate", obj({
        "x": {"type": "number", "description": "First operand"},
        "y": {"type": "number", "description": "Second operand"},
        "operation": {"type": "string", "description": "The operation to perform",
                      "enum": ["add", "sub", "mul", "div"]},
    }, required=["x", "y", "operation"]), "Perform a calculation on two numbers.")
    response = chat(c, c.lsc, "Calculate 5 + 3", [calculate], max_tokens=256)
    assert response is not None and response.choices[0].message.content


def test_streaming_tool_calls(clients: Make) -> None:
    c = clients(llama_id(MODULE, "TestStreamingWithTools::test_streaming_tool_calls", TXT))
    tools = [function("get_time", obj({"timezone": {"type": "string"}}), "Get current time")]
    chunks = list(chat(c, c.lsc, "What time is it in UTC?", tools, stream=True))
    assert len(chunks) > 0


def test_tool_without_schema(clients: Make) -> None:
    c = clients(llama_id(MODULE, "TestEdgeCases::test_tool_without_schema", TXT))
    tools = [function("no_args_tool", obj({}), "Tool with no arguments")]
    assert chat(c, c.lsc, "Call the no args tool", tools) is not None


def test_multiple_tools_with_different_schemas(clients: Make) -> None:
    c = clients(llama_id(MODULE, "TestEdgeCases::test_multiple_tools_with_different_schemas", TXT))
    tools = [
        function("simple", obj({"x": {"type": "string"}})),
        function("complex", obj({"data": {"$ref": "#/$defs/Complex"}},
                                **{"$defs": {"Complex": obj({"nested": {"type": "array",
                                                                        "items": {"type": "number"}}})}})),
        function("with_output", obj({"input": {"type": "string"}})),
    ]
    assert chat(c, c.lsc, "Use one of the available tools", tools) is not None
