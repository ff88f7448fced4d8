"""llama-stack v0.7.1's ``tests/integration/inference/test_openai_completion.py`` on Ollama, replayed.

Our own tests for the 33 cases the recordings name, with the prompts llama-stack's test cases
used, so relaystack sends Ollama the bodies llama-stack recorded and replay hits. Each call
carries the case's llama-stack test id. Skips keep the reference's reasons; ``n > 1`` is the one
difference: the reference skipped it for Ollama (one choice comes back), relaystack refuses it
with a 400 before any upstream call, and the test asserts that.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from ._api import API_ERRORS
from ._recordings import Recordings
from .conftest import REASONING_MODEL, TEXT_MODEL, Clients, llama_id, provider_type

MODULE = "test_openai_completion.py"
TXT = "txt=" + TEXT_MODEL
UPSTREAM = TEXT_MODEL.removeprefix("ollama/")
CLIENTS = ["openai_client", "client_with_models"]
# the reference's test cases (tests/integration/test_cases/inference/*.json at v0.7.1)
SANITY_PROMPT = (
    "Respond to this question and explain your answer. "
    "Complete the sentence using one word: Roses are red, violets are "
)
STOP_PROMPT = (
    "Return the exact same sentence and don't add additional words): Michael Jordan was born in the year of 1963"
)
CHAT_CASES = {
    "inference:chat_completion:non_streaming_01": ("Which planet do humans live on?", "Earth"),
    "inference:chat_completion:non_streaming_02": (
        "Which planet has rings around it with a name starting with letter S?", "Saturn"),
    "inference:chat_completion:streaming_01": ("What's the name of the Sun in latin?", "Sol"),
    "inference:chat_completion:streaming_02": ("What is the name of the US captial?", "Washington"),
}
TOOL_CASE_MESSAGES = [
    {"role": "system", "content": "Pretend you are a weather assistant."},
    {"role": "user", "content": "What's the weather like in San Francisco, CA?"},
]
TOOL_CASE_TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string",
                                        "description": "The city and state (both required), e.g. San Francisco, CA."}},
            "required": ["location"],
        },
    },
}]
STRUCTURED_MESSAGES = [
    {"role": "system", "content": 'You are a helpful assistant. Michael Jordan was born in 1963. His first name is '
                                  '"Michael", He played basketball for the Chicago Bulls for 15 seasons and was '
                                  "drafted in 1984"},
    {"role": "user", "content": "Please give me information about Michael Jordan."},
]
STORE_MESSAGE = "Hello, world!"
TOOL_MESSAGE = "What's the weather in Tokyo? Use the get_weather function to get the weather."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a given city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city to get the weather for"}},
        },
    },
}
Make = Callable[[str], Clients]


def normalized(text: str) -> str:
    return unicodedata.normalize("NFD", text).encode("ascii", "ignore").decode("ascii").lower()


def chat_body(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """The upstream body llama-stack recorded (field order does not matter)."""
    return {"model": UPSTREAM, "messages": messages, **fields}


# ---- the reference's skip helpers (they ask the server, with the test's id) -------------------------

_NO_COMPLETIONS = {"inline::builtin", "inline::sentence-transformers", "remote::vllm", "remote::bedrock",
                   "remote::databricks", "remote::nvidia", "remote::runpod", "remote::sambanova", "remote::vertexai",
                   "remote::groq", "remote::llama-cpp-server", "remote::oci", "remote::gemini", "remote::anthropic",
                   "remote::azure", "remote::llama-openai-compat", "remote::watsonx"}
_NO_CHAT = {"inline::builtin", "inline::sentence-transformers", "remote::vllm", "remote::databricks",
            "remote::cerebras", "remote::runpod"}


def skip_unless_completions(c: Clients) -> None:
    kind = provider_type(c, TEXT_MODEL)
    if kind in _NO_COMPLETIONS:
        pytest.skip(f"Model {TEXT_MODEL} hosted by {kind} doesn't support OpenAI completions.")


def skip_unless_chat(c: Clients, model: str = TEXT_MODEL) -> None:
    kind = provider_type(c, model)
    if kind in _NO_CHAT:
        pytest.skip(f"Model {model} hosted by {kind} doesn't support OpenAI chat completions.")


# ---- completions --------------------------------------------------------------------------------------


def test_openai_completion_non_streaming(clients: Make, replaying: bool, recordings: Recordings) -> None:
    c = clients(llama_id(MODULE, "test_openai_completion_non_streaming", TXT, "inference:completion:sanity"))
    skip_unless_completions(c)
    response = c.lsc.completions.create(model=TEXT_MODEL, prompt=SANITY_PROMPT, stream=False)
    assert len(response.choices) > 0 and len(response.choices[0].text) > 10
    if replaying:
        body = {"model": UPSTREAM, "prompt": SANITY_PROMPT, "stream": False}
        assert response.choices[0].text == recordings.completion_text(c.test_id, body)


def test_openai_completion_non_streaming_suffix(clients: Make) -> None:
    c = clients(llama_id(MODULE, "test_openai_completion_non_streaming_suffix", TXT, "inference:completion:suffix"))
    skip_unless_completions(c)
    pytest.skip(f"Suffix is not supported for the model: {TEXT_MODEL}.")  # only qwen2.5-coder:1.5b


def test_openai_completion_streaming(clients: Make, replaying: bool, recordings: Recordings) -> None:
    c = clients(llama_id(MODULE, "test_openai_completion_streaming", TXT, "inference:completion:sanity"))
    skip_unless_completions(c)
    stream = c.lsc.completions.create(model=TEXT_MODEL, prompt=SANITY_PROMPT, stream=True, max_tokens=50)
    text = "".join(chunk.choices[0].text or "" for chunk in stream)
    assert len(text.strip()) > 10
    if replaying:
        body = {"model": UPSTREAM, "prompt": SANITY_PROMPT, "max_tokens": 50, "stream": True}
        assert text == recordings.completion_text(c.test_id, body)


def test_openai_completion_guided_choice(clients: Make) -> None:
    c = clients(llama_id(MODULE, "test_openai_completion_guided_choice", TXT))
    kind = provider_type(c, TEXT_MODEL)
    if kind != "remote::vllm":
        pytest.skip(f"Model {TEXT_MODEL} hosted by {kind} doesn't support vllm extra_body parameters.")


def test_openai_completion_stop_sequence(clients: Make, replaying: bool, recordings: Recordings) -> None:
    c = clients(llama_id(MODULE, "test_openai_completion_stop_sequence", TXT, "inference:completion:stop_sequence"))
    skip_unless_completions(c)
    for stop in ("1963", ["blathering", "1963"]):
        response = c.openai.completions.create(model=TEXT_MODEL, prompt=STOP_PROMPT, stop=stop, stream=False)
        assert len(response.choices) > 0 and "1963" not in response.choices[0].text
        if replaying:
            body = {"model": UPSTREAM, "prompt": STOP_PROMPT, "stop": stop, "stream": False}
            assert response.choices[0].text == recordings.completion_text(c.test_id, body)


@pytest.mark.parametrize("name", ["test_openai_completion_logprobs", "test_openai_completion_logprobs_streaming"])
def test_openai_completion_logprobs(clients: Make, name: str) -> None:
    c = clients(llama_id(MODULE, name, TXT, "inference:completion:log_probs"))
    skip_unless_completions(c)
    kind = provider_type(c, TEXT_MODEL)
    if kind in ("remote::ollama", "remote::watsonx"):
        pytest.skip(f"Model {TEXT_MODEL} hosted by {kind} doesn't support /v1/completions logprobs.")


# ---- chat completions, over both clients --------------------------------------------------------------


@pytest.mark.parametrize("case", ["inference:chat_completion:non_streaming_01",
                                  "inference:chat_completion:non_streaming_02"])
@pytest.mark.parametrize("client", CLIENTS)
def test_openai_chat_completion_non_streaming(
    clients: Make, client: str, case: str, replaying: bool, recordings: Recordings
) -> None:
    c = clients(llama_id(MODULE, "test_openai_chat_completion_non_streaming", client, TXT, case))
    skip_unless_chat(c)
    question, expected = CHAT_CASES[case]
    messages = [{"role": "user", "content": question}]
    response = c.compat(client).chat.completions.create(model=TEXT_MODEL, messages=messages, stream=False)
    content = response.choices[0].message.content
    assert content.strip() and normalized(expected) in normalized(content)
    if replaying:
        assert content == recordings.chat_text(c.test_id, chat_body(messages, stream=False))


@pytest.mark.parametrize("case", ["inference:chat_completion:streaming_01", "inference:chat_completion:streaming_02"])
@pytest.mark.parametrize("client", CLIENTS)
def test_openai_chat_completion_streaming(
    clients: Make, client: str, case: str, replaying: bool, recordings: Recordings
) -> None:
    c = clients(llama_id(MODULE, "test_openai_chat_completion_streaming", client, TXT, case))
    skip_unless_chat(c)
    question, expected = CHAT_CASES[case]
    messages = [{"role": "user", "content": question}]
    stream = c.compat(client).chat.completions.create(model=TEXT_MODEL, messages=messages, stream=True, timeout=120)
    pieces = [ch.choices[0].delta.content for ch in stream if ch.choices and ch.choices[0].delta.content]
    assert pieces and normalized(expected) in normalized("".join(pieces))
    if replaying:
        assert "".join(pieces) == recordings.chat_text(c.test_id, chat_body(messages, stream=True))


@pytest.mark.parametrize("case", ["inference:chat_completion:streaming_01", "inference:chat_completion:streaming_02"])
@pytest.mark.parametrize("client", CLIENTS)
def test_openai_chat_completion_streaming_with_n(clients: Make, client: str, case: str) -> None:
    """The reference skipped this for Ollama (it ignores ``n``); relaystack refuses it up front."""
    c = clients(llama_id(MODULE, "test_openai_chat_completion_streaming_with_n", client, TXT, case))
    skip_unless_chat(c)
    assert provider_type(c, TEXT_MODEL) == "remote::ollama"
    question, _ = CHAT_CASES[case]
    with pytest.raises(API_ERRORS) as caught:
        c.compat(client).chat.completions.create(
            model=TEXT_MODEL, messages=[{"role": "user", "content": question}], stream=True, n=2)
    assert caught.value.status_code == 400 and "n=1" in str(caught.value)


# ---- the inference store ---------------------------------------------------------------------------------


def collect_stream(stream: Any) -> tuple[str, str]:
    completion_id, content = None, ""
    for chunk in stream:
        if completion_id is None and chunk.id:
            completion_id = chunk.id
        if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
            content += chunk.choices[0].delta.content
    assert completion_id, "the stream carried no completion id"
    return completion_id, content


def wait_until_listed(client: Any, completion_id: str, timeout: float = 10.0) -> None:
    """The store write may trail the response; wait for it (not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while completion_id not in [x.id for x in client.chat.completions.list(limit=1000).data]:
        assert time.monotonic() < deadline, f"completion {completion_id} never appeared in the list"
        time.sleep(0.05)


def first_input_content(retrieved: Any) -> Any:
    message = retrieved.input_messages[0]
    return message["content"] if isinstance(message, dict) else message.content


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("client", CLIENTS)
def test_inference_store(clients: Make, client: str, stream: bool, replaying: bool, recordings: Recordings) -> None:
    c = clients(llama_id(MODULE, "test_inference_store", client, TXT, str(stream)))
    skip_unless_chat(c)
    api = c.compat(client)
    messages = [{"role": "user", "content": STORE_MESSAGE}]
    response = api.chat.completions.create(model=TEXT_MODEL, messages=messages, stream=stream)
    if stream:
        completion_id, content = collect_stream(response)
    else:
        completion_id, content = response.id, response.choices[0].message.content
    if replaying:
        assert content == recordings.chat_text(c.test_id, chat_body(messages, stream=stream))
    wait_until_listed(api, completion_id)
    retrieved = api.chat.completions.retrieve(completion_id)
    assert retrieved.id == completion_id
    assert retrieved.choices[0].message.content == content
    assert first_input_content(retrieved) == STORE_MESSAGE


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("client", CLIENTS)
def test_inference_store_tool_calls(clients: Make, client: str, stream: bool, replaying: bool,
                                    recordings: Recordings) -> None:
    c = clients(llama_id(MODULE, "test_inference_store_tool_calls", client, TXT, str(stream)))
    skip_unless_chat(c)
    api = c.compat(client)
    messages = [{"role": "user", "content": TOOL_MESSAGE}]
    response = api.chat.completions.create(model=TEXT_MODEL, messages=messages, stream=stream, tools=[WEATHER_TOOL])
    if stream:
        completion_id, content = collect_stream(response)
    else:
        completion_id, content = response.id, response.choices[0].message.content
    wait_until_listed(api, completion_id)
    retrieved = api.chat.completions.retrieve(completion_id)
    assert retrieved.id == completion_id and first_input_content(retrieved) == TOOL_MESSAGE
    tool_calls = retrieved.choices[0].message.tool_calls
    if tool_calls:
        assert len(tool_calls) == 1 and tool_calls[0].function.name and tool_calls[0].function.arguments
    else:
        assert retrieved.choices[0].message.content == content
    if replaying:
        recorded = recordings.response(c.test_id, "/v1/chat/completions",
                                       chat_body(messages, stream=stream, tools=[WEATHER_TOOL]))
        assert recorded and tool_calls and tool_calls[0].function.name == "get_weather"


def test_openai_chat_completion_non_streaming_with_file(clients: Make) -> None:
    c = clients(llama_id(MODULE, "test_openai_chat_completion_non_streaming_with_file", TXT))
    kind = provider_type(c, TEXT_MODEL)
    if kind != "remote::openai":
        pytest.skip(f"Model {TEXT_MODEL} hosted by {kind} doesn't support chat completion calls with base64 "
                    "encoded files.")


def test_openai_chat_completion_reasoning_passthrough(clients: Make, replaying: bool,
                                                      recordings: Recordings) -> None:
    """Reasoning survives a round trip: turn 1's ``reasoning`` comes back to the client, and the
    assistant message sent back in turn 2 (``model_dump()``, nulls included) reaches Ollama."""
    c = clients(llama_id(MODULE, "test_openai_chat_completion_reasoning_passthrough", "txt=" + REASONING_MODEL))
    if "gpt-oss" not in REASONING_MODEL:
        pytest.skip(f"Model {REASONING_MODEL} doesn't emit reasoning tokens; skipping reasoning passthrough test.")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2? Think step by step."},
    ]
    first = c.openai.chat.completions.create(model=REASONING_MODEL, messages=messages).choices[0].message
    reasoning = (first.model_extra or {}).get("reasoning") or (first.model_extra or {}).get("reasoning_content")
    assert reasoning, f"no reasoning in turn 1: {first.model_extra}"
    messages.append(first.model_dump())
    messages.append({"role": "user", "content": "Now multiply that result by 3."})
    second = c.openai.chat.completions.create(model=REASONING_MODEL, messages=messages).choices[0].message
    assert second.content
    if replaying:
        sent = [{k: v for k, v in m.items() if v is not None} for m in messages]
        body = {"model": REASONING_MODEL.removeprefix("ollama/"), "messages": sent}
        assert second.content == recordings.chat_text(c.test_id, body)


# ---- tools and structured output (OpenAI client only) ---------------------------------------------------

TOOL_ID_CASE = "inference:chat_completion:tool_calling"


def test_openai_chat_completion_with_tools(clients: Make) -> None:
    c = clients(llama_id(MODULE, "test_openai_chat_completion_with_tools", TXT, TOOL_ID_CASE))
    response = c.openai.chat.completions.create(model=TEXT_MODEL, messages=TOOL_CASE_MESSAGES, tools=TOOL_CASE_TOOLS,
                                                tool_choice="auto", stream=False)
    assert len(response.choices) == 1 and len(response.choices[0].message.tool_calls or []) == 1
    call = response.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert "location" in call.function.arguments and "San Francisco" in call.function.arguments


def test_openai_chat_completion_with_tools_and_streaming(clients: Make) -> None:
    c = clients(llama_id(MODULE, "test_openai_chat_completion_with_tools_and_streaming", TXT, TOOL_ID_CASE))
    stream = c.openai.chat.completions.create(model=TEXT_MODEL, messages=TOOL_CASE_MESSAGES, tools=TOOL_CASE_TOOLS,
                                              tool_choice="auto", stream=True)
    calls: list[dict[str, str]] = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.tool_calls:
            for i, delta in enumerate(chunk.choices[0].delta.tool_calls):
                while len(calls) <= i:
                    calls.append({"name": "", "arguments": ""})
                if delta.function and delta.function.name:
                    calls[i]["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    calls[i]["arguments"] += delta.function.arguments
    assert len(calls) == 1 and calls[0]["name"] == "get_weather"
    assert "location" in calls[0]["arguments"] and "San Francisco" in calls[0]["arguments"]


def test_openai_chat_completion_with_tool_choice_none(clients: Make) -> None:
    """Ollama calls tools even with ``tool_choice: "none"``: relaystack leaves tools out (the
    recorded upstream body has neither ``tools`` nor ``tool_choice``; sending them would miss)."""
    c = clients(llama_id(MODULE, "test_openai_chat_completion_with_tool_choice_none", TXT, TOOL_ID_CASE))
    response = c.openai.chat.completions.create(model=TEXT_MODEL, messages=TOOL_CASE_MESSAGES, tools=TOOL_CASE_TOOLS,
                                                tool_choice="none", stream=False)
    assert len(response.choices) == 1
    assert not response.choices[0].message.tool_calls


class AnswerFormat(BaseModel):
    first_name: str
    last_name: str
    year_of_birth: int


def test_openai_chat_completion_structured_output(clients: Make) -> None:
    c = clients(llama_id(MODULE, "test_openai_chat_completion_structured_output", TXT,
                         "inference:chat_completion:structured_output"))
    response = c.openai.chat.completions.create(
        model=TEXT_MODEL, messages=STRUCTURED_MESSAGES, stream=False,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "AnswerFormat", "schema": AnswerFormat.model_json_schema()}},
    )
    answer = AnswerFormat.model_validate_json(response.choices[0].message.content)
    assert "michael" in answer.first_name.lower() and "jordan" in answer.last_name.lower()
    assert answer.year_of_birth == 1963
    assert json.loads(response.choices[0].message.content)["year_of_birth"] == 1963
