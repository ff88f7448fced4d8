"""Record/replay covers both front-ends: their upstream traffic is chat completions, so a session of
Messages and Responses calls recorded through `relaystack run` replays offline, answer for answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
from openai import OpenAI

from fakes.fake_together import FakeTogether
from support.server import start_server, write_config
from support.stack import CHAT_MODEL, issue_config

KEY = "sk-frontends-replay-0123456789abcdef"
WEATHER = {"name": "get_weather", "description": "Current weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def session(base_url: str) -> dict[str, Any]:
    """Every kind of front-end call: Messages JSON, streamed, a tool round trip, count_tokens;
    Responses JSON, streamed, and a continued conversation (stored in this server's own store)."""
    claude = anthropic.Anthropic(base_url=base_url, api_key="unused", max_retries=0, timeout=30)
    question: Any = {"role": "user", "content": "Weather in Lima?"}
    plain = claude.messages.create(model=CHAT_MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
    with claude.messages.stream(model=CHAT_MODEL, max_tokens=64,
                                messages=[{"role": "user", "content": "Stream it"}]) as stream:
        streamed = "".join(stream.text_stream)
    asked = claude.messages.create(model=CHAT_MODEL, max_tokens=64, tools=[WEATHER], messages=[question])  # type: ignore[list-item]
    use = asked.content[-1]
    assert use.type == "tool_use"
    answered = claude.messages.create(model=CHAT_MODEL, max_tokens=64, tools=[WEATHER], messages=[  # type: ignore[list-item]
        question, {"role": "assistant", "content": asked.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Fog"}]}])
    counted = claude.messages.count_tokens(model=CHAT_MODEL, messages=[{"role": "user", "content": "Count me"}])

    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=30)
    first = client.responses.create(model=CHAT_MODEL, input="My name is Ada", instructions="Be brief.")
    second = client.responses.create(model=CHAT_MODEL, input="What is my name?", previous_response_id=first.id)
    with client.responses.stream(model=CHAT_MODEL, input="Hi streamer") as events:
        final = events.get_final_response()
    return {
        "messages": (plain.content[0].text, plain.stop_reason, plain.usage.output_tokens),  # type: ignore[union-attr]
        "messages_stream": streamed,
        "tool_use": (use.name, use.input, answered.content[0].text),  # type: ignore[union-attr]
        "count_tokens": counted.input_tokens,
        "responses": (first.output_text, second.output_text, final.output_text, final.status),
    }


def test_a_recorded_front_end_session_replays_with_no_upstream(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    fake = FakeTogether((KEY,)).start()
    try:
        config = write_config(tmp_path / "run.yaml", issue_config(api_key=KEY, base_url=fake.base_url))
        recorder = start_server(config, home=tmp_path / "record",
                                args=["--record-mode", "record", "--recordings", str(recordings)])
        try:
            recorded = session(recorder.base_url)
        finally:
            recorder.stop()
        upstream_calls = len(fake.requests_to("/v1/chat/completions"))
    finally:
        fake.stop()
    assert upstream_calls == 7 and recorded["messages_stream"] == "You said: Stream it"
    files = list(recordings.rglob("*.json"))
    assert len(files) >= upstream_calls and not any(KEY in p.read_text() for p in files)

    replayer = start_server(config, home=tmp_path / "replay",  # the fake is gone: replay or fail
                            args=["--record-mode", "replay", "--recordings", str(recordings)])
    try:
        assert session(replayer.base_url) == recorded
    finally:
        replayer.stop()
