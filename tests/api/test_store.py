"""Stored chat completions: every completion stored unless store is false, streams assembled."""

from __future__ import annotations

import openai
import pytest

from support.stack import CHAT_MODEL, Stack

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0)


def test_non_streamed_completion_is_stored_with_its_input(stack: Stack) -> None:
    messages = [{"role": "user", "content": "Which planet do humans live on?"}]
    response = client(stack).chat.completions.create(model=CHAT_MODEL, messages=messages)
    stored = client(stack).chat.completions.retrieve(response.id)
    assert stored.choices[0].message.content == response.choices[0].message.content
    assert stored.model == CHAT_MODEL
    assert stored.input_messages[0]["content"] == messages[0]["content"]  # type: ignore[attr-defined]


def test_streamed_completion_is_stored_assembled(stack: Stack) -> None:
    messages = [{"role": "user", "content": "Stream me something"}]
    chunks = list(client(stack).chat.completions.create(
        model=CHAT_MODEL, messages=messages, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    stored = client(stack).chat.completions.retrieve(chunks[0].id)
    assert stored.choices[0].message.content == text
    assert stored.choices[0].finish_reason == "stop"
    assert stored.usage is not None and stored.usage.total_tokens == chunks[-1].usage.total_tokens  # type: ignore[union-attr]


def test_usage_together_sent_unasked_is_hidden_from_the_client_but_stored(stack: Stack) -> None:
    chunks = list(client(stack).chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "count my tokens"}], stream=True))
    assert all(c.usage is None for c in chunks)
    stored = client(stack).chat.completions.retrieve(chunks[0].id)
    assert stored.usage is not None and stored.usage.total_tokens > 0


def test_streamed_tool_call_deltas_are_merged(stack: Stack) -> None:
    chunks = list(client(stack).chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Weather in Tokyo?"}], tools=TOOLS, stream=True))
    stored = client(stack).chat.completions.retrieve(chunks[0].id)
    call = stored.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments.startswith("{")  # type: ignore[union-attr]
    assert stored.choices[0].finish_reason == "tool_calls"


def test_store_false_is_honoured(stack: Stack) -> None:
    response = client(stack).chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "forget me"}], store=False)
    with pytest.raises(openai.NotFoundError):
        client(stack).chat.completions.retrieve(response.id)
    chunks = list(client(stack).chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "forget me"}], store=False, stream=True))
    with pytest.raises(openai.NotFoundError):
        client(stack).chat.completions.retrieve(chunks[0].id)


def test_a_broken_stream_is_not_stored_as_finished(stack: Stack) -> None:
    stack.fake.cut_stream_after(2)
    seen = []
    with pytest.raises(openai.APIError):
        for chunk in client(stack).chat.completions.create(
                model=CHAT_MODEL, messages=[{"role": "user", "content": "cut"}], stream=True):
            seen.append(chunk)
    with pytest.raises(openai.NotFoundError):
        client(stack).chat.completions.retrieve(seen[0].id)


def test_pagination_never_skips_rows_of_the_same_second(stack: Stack) -> None:
    model = CHAT_MODEL
    created = {client(stack).chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"row {i}"}]).id for i in range(7)}
    for order in ("asc", "desc"):
        seen: list[str] = []
        after = None
        while True:
            page = client(stack).chat.completions.list(limit=2, order=order, model=model,  # type: ignore[arg-type]
                                                       **({"after": after} if after else {}))
            seen.extend(item.id for item in page.data)
            if not page.has_more:
                break
            after = page.data[-1].id
        assert len(seen) == len(set(seen))
        assert created <= set(seen)


def test_unknown_completion_is_404(stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError):
        client(stack).chat.completions.retrieve("chatcmpl-does-not-exist")
