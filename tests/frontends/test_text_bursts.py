"""A long answer arriving in one burst (many events per socket read, every event alike but for its
text: what vLLM, llama.cpp or Ollama send): both SDKs get every token as its own delta, exactly,
through the byte-level reading of plain text events (``frontends/text_runs.py``)."""

from __future__ import annotations

import json

import anthropic
from openai import OpenAI

from support.stack import Stack

TEXTS = [f"tok{i} " for i in range(150)] + [
    'say "hi" ', "back\\slash ", "ends in \\", '","', "naïve ☃ 🙂 ", "line\nbreak ", "\t", '"},"x":null ',
    "/ ", "", "\u2028 ",
] + [f"more{i} " for i in range(150)]  # fmt: skip
USAGE = {"prompt_tokens": 9, "completion_tokens": len(TEXTS), "total_tokens": 9 + len(TEXTS)}


def event(delta: dict[str, object], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    body = {"id": "chat-burst", "object": "chat.completion.chunk", "created": 1, "model": "up",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"  # Python's escaping (\u...), not orjson's


def burst() -> bytes:
    return (event({"role": "assistant", "content": ""}) + b"".join(event({"content": t}) for t in TEXTS)
            + event({}, "stop", USAGE) + b"data: [DONE]\n\n")  # fmt: skip


def test_the_responses_stream_of_a_burst_has_every_token(stack: Stack, openai_client: OpenAI, chat_model: str) -> None:
    stack.fake.stream_raw_next(burst())
    events = list(openai_client.responses.create(model=chat_model, input="Go on", stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]  # type: ignore[union-attr]
    assert deltas == [t for t in TEXTS if t]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "".join(TEXTS)
    assert completed.response.usage is not None and completed.response.usage.output_tokens == len(TEXTS)
    assert openai_client.responses.retrieve(completed.response.id).output_text == "".join(TEXTS)


def test_the_messages_stream_of_a_burst_has_every_token(
    stack: Stack, anthropic_client: anthropic.Anthropic, chat_model: str
) -> None:
    stack.fake.stream_raw_next(burst())
    texts: list[str] = []
    with anthropic_client.messages.stream(model=chat_model, max_tokens=1024,
                                          messages=[{"role": "user", "content": "Go on"}]) as stream:  # fmt: skip
        for item in stream:
            if item.type == "content_block_delta" and item.delta.type == "text_delta":
                texts.append(item.delta.text)
        message = stream.get_final_message()
    assert texts == [t for t in TEXTS if t]
    assert message.content[0].type == "text" and message.content[0].text == "".join(TEXTS)
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, len(TEXTS))
