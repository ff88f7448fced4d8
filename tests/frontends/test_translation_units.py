"""The translators on their own: request bodies, item ordering, stream event sequences (no server)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest

from relaystack.errors import InvalidRequestError, UpstreamProtocolError
from relaystack.frontends.chat_reader import ChatTurn, completion_as_chunk, parse_events
from relaystack.frontends.messages_output import MessagesStream, message_object
from relaystack.frontends.messages_request import parse_messages_request
from relaystack.frontends.messages_routes import estimate_tokens
from relaystack.frontends.responses_input import items_to_messages, listed_items
from relaystack.frontends.responses_request import parse_responses_request
from relaystack.frontends.responses_stream import ResponsesStream
from relaystack.storage.base import RenderedResponse


def chunk(content: str | None = None, tools: list[dict[str, Any]] | None = None, finish: str | None = None,
          usage: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    delta: dict[str, Any] = {"content": content}
    if tools:
        delta["tool_calls"] = tools
    return {"id": "c1", "created": 7, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": usage}  # fmt: skip


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def events_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(block.split(b"\ndata: ", 1)[1]) for block in data.strip().split(b"\n\n")]


# -- SSE parsing ------------------------------------------------------------------------------------
def test_parse_events_reads_every_event_of_a_block_and_skips_the_rest() -> None:
    block = b": keep-alive\n\n" + sse({"a": 1}, {"b": 2}) + b"event: x\ndata: {\"c\": 3}\n\ndata: [DONE]\n\n"
    assert parse_events(block) == [{"a": 1}, {"b": 2}, {"c": 3}]
    with pytest.raises(UpstreamProtocolError):
        parse_events(b"data: {not json\n\n")


def test_a_json_completion_reads_like_one_chunk() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    completion = {"id": "x", "created": 1, "usage": {"prompt_tokens": 3},
                  "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}]}  # fmt: skip
    turn = ChatTurn()
    turn.add(completion_as_chunk(completion))
    assert (turn.finish_reason, turn.usage, turn.tool_calls()[0].name, turn.tool_calls()[0].arguments_text) == (
        "tool_calls", {"prompt_tokens": 3}, "f", "{}")  # fmt: skip


# -- Responses: requests -------------------------------------------------------------------------------
def test_the_upstream_body_is_llama_stacks() -> None:
    tool = {"type": "function", "name": "get_weather", "description": "d", "parameters": {"type": "object"}}
    request = parse_responses_request({"model": "m", "input": "hi", "tools": [tool], "max_output_tokens": 100,
                                       "store": False, "metadata": {"k": "v"}})  # fmt: skip
    assert request.chat_body == {
        "model": "m", "stream": True, "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": tool}], "parallel_tool_calls": True, "max_completion_tokens": 100,
    }  # fmt: skip
    assert request.store is False and request.stream is False


def test_allowed_tools_become_chats_allowed_tools() -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_weather"}]}
    request = parse_responses_request({"model": "m", "input": "hi", "tools": [tool], "tool_choice": choice})
    assert request.chat_body["tool_choice"] == {"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}}


def test_function_outputs_follow_their_calls_wherever_they_sit() -> None:
    items = [
        {"role": "user", "content": "SF or LA?"},
        {"type": "function_call", "call_id": "a", "name": "w", "arguments": "{}"},
        {"type": "function_call", "call_id": "b", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": "rain"},
        {"type": "function_call_output", "call_id": "b", "output": "cloud"},
    ]
    messages = items_to_messages(items, [])
    assert [(m["role"], m.get("tool_call_id") or (m.get("tool_calls") or [{}])[0].get("id")) for m in messages] == [
        ("user", None), ("assistant", "a"), ("tool", "a"), ("assistant", "b"), ("tool", "b"),
    ]  # fmt: skip
    assert "content" not in messages[1]


def test_a_repeated_question_with_tool_outputs_is_sent_once() -> None:
    previous = [{"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "", "tool_calls": [{"index": 0, "id": "a"}]}]  # fmt: skip
    again = [{"role": "user", "content": "Weather?"}, {"type": "function_call_output", "call_id": "a", "output": "ok"}]
    assert items_to_messages(again, previous) == [{"role": "tool", "tool_call_id": "a", "content": "ok"}]
    # without tool outputs, a user may well ask the same thing twice
    assert items_to_messages([{"role": "user", "content": "Weather?"}], previous) == [
        {"role": "user", "content": "Weather?"}]  # fmt: skip


def test_an_image_in_a_tool_output_rides_in_a_user_message() -> None:
    items = [{"type": "function_call_output", "call_id": "a",
              "output": [{"type": "input_text", "text": "shot:"}, {"type": "input_image", "image_url": "data:x"}]}]
    assert items_to_messages(items, []) == [
        {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "shot:"},
                                                          {"type": "text", "text": "[image]"}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x", "detail": "auto"}}]},
    ]  # fmt: skip


def test_listed_items_are_typed_with_ids_and_part_lists() -> None:
    listed = listed_items([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    assert [i["type"] for i in listed] == ["message", "message"] and all(i["id"] for i in listed)
    assert listed[0]["content"] == [{"type": "input_text", "text": "hi"}]
    assert listed[1]["content"] == [{"type": "output_text", "text": "yo"}]


@pytest.mark.parametrize("body", [{"input": "x"}, {"model": "m"}, {"model": "m", "input": 3},
                                  {"model": "m", "input": [{"role": "robot", "content": "x"}]},
                                  {"model": "m", "input": "x", "stream": "yes"}])  # fmt: skip
def test_bad_requests_are_400(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        request = parse_responses_request(body)
        items_to_messages(request.items, [])


# -- Responses: the stream ------------------------------------------------------------------------------
def test_text_then_a_tool_call_stream_as_two_items_numbered_in_order() -> None:
    stream = ResponsesStream("resp_1", 7, {"model": "m"})
    data = stream.start()
    data += stream.feed([chunk(""), chunk("Let me check.")])
    data += stream.feed([
        chunk(tools=[{"index": 0, "id": "call_1", "function": {"name": "w", "arguments": ""}}]),
        chunk(tools=[{"index": 0, "function": {"arguments": "{\"c\":1}"}}]),
        chunk(finish="tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ])  # fmt: skip
    last, rendered = stream.finish()
    final = rendered.as_dict()
    events = events_of(data + last)
    assert events[-1]["response"] == final  # the stored object is the one the client got
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert [(i["type"], i["status"]) for i in final["output"]] == [("message", "completed"),
                                                                   ("function_call", "completed")]  # fmt: skip
    assert final["output"][1]["arguments"] == '{"c":1}' and final["output"][1]["call_id"] == "call_1"
    assert final["usage"]["total_tokens"] == 7
    assert {e["output_index"] for e in events if "item_id" in e and e["item_id"] == final["output"][1]["id"]} == {1}


def test_a_failed_stream_closes_the_open_item_and_says_failed() -> None:
    stream = ResponsesStream("resp_1", 7, {"model": "m"})
    stream.start()
    stream.feed([chunk("partial")])
    last, rendered = stream.fail(UpstreamProtocolError("cut"))
    final = rendered.as_dict()
    types = [e["type"] for e in events_of(last)]
    assert types[-1] == "response.failed" and "response.completed" not in types
    assert final["status"] == "failed" and final["error"] == {"code": "server_error", "message": "cut"}
    assert final["output"][0]["status"] == "incomplete"


def test_an_empty_answer_is_still_one_message() -> None:
    stream = ResponsesStream("resp_1", 7, {"model": "m"})
    stream.start()
    stream.feed([chunk(finish="stop")])
    final = stream.finish()[1].as_dict()
    assert [(i["type"], i["content"][0]["text"]) for i in final["output"]] == [("message", "")]


# -- Messages -------------------------------------------------------------------------------------------
def test_anthropic_blocks_become_chat_messages() -> None:
    request = parse_messages_request({"model": "m", "max_tokens": 9, "system": "S", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                  "data": "QUJD"}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                                          {"type": "text", "text": "Calling."},
                                          {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                      "content": [{"type": "text", "text": "boom"}]},
                                     {"type": "text", "text": "and now?"}]},
    ], "thinking": {"type": "enabled", "budget_tokens": 1024}})  # fmt: skip
    assert request.chat_body["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]},
        {"role": "assistant", "content": "Calling.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
        {"role": "user", "content": "and now?"},
    ]  # fmt: skip
    assert request.ignored == ["thinking"]


def test_output_config_becomes_response_format_and_effort() -> None:
    schema = {"type": "object"}
    config = {"effort": "low", "format": {"type": "json_schema", "schema": schema}}
    request = parse_messages_request(
        {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}], "output_config": config}
    )
    assert request.chat_body["reasoning_effort"] == "low"
    assert request.chat_body["response_format"]["json_schema"]["schema"] == schema


def test_the_messages_stream_numbers_blocks_and_ends_with_usage() -> None:
    stream = MessagesStream("msg_1", "m", [])
    data = stream.start() + stream.feed([
        chunk("Hi"), chunk(tools=[{"index": 0, "id": "t1", "function": {"name": "f", "arguments": "{\"a\""}}]),
        chunk(tools=[{"index": 0, "function": {"arguments": ":1}"}}]), chunk(finish="tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}},
    ]) + stream.finish()  # fmt: skip
    events = events_of(data)
    assert [(e["type"], e.get("index")) for e in events] == [
        ("message_start", None), ("ping", None), ("content_block_start", 0), ("content_block_delta", 0),
        ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1),
        ("content_block_delta", 1), ("content_block_stop", 1), ("message_delta", None), ("message_stop", None),
    ]  # fmt: skip
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"]["input_tokens"] == 4 and events[-2]["usage"]["output_tokens"] == 3
    assert message_object("msg_1", "m", stream.turn, [])["content"][1]["input"] == {"a": 1}


def test_a_named_stop_sequence_is_reported() -> None:
    turn = ChatTurn()
    turn.add({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop", "stop_reason": "###"}]})
    message = message_object("msg_1", "m", turn, ["###"])
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "###")


def test_the_estimate_counts_text_messages_and_tools() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 40}], "tools": []}
    assert estimate_tokens(body) == 10 + 4


def test_text_runs_and_event_by_event_translate_the_same() -> None:
    tricky = ['say "hi"', "back\\slash", '","', "naïve ☃", "", "line\nbreak"]
    chunks = [chunk(text) for text in tricky]
    chunks += [chunk(tools=[{"index": 0, "id": "call_1", "function": {"name": "w", "arguments": "{}"}}]),
               chunk("after"), chunk(finish="stop"), {"choices": [], "usage": {"prompt_tokens": 1}}]  # fmt: skip
    fast, slow = ResponsesStream("resp_1", 7, {"model": "m"}), ResponsesStream("resp_1", 7, {"model": "m"})
    fast_events = events_of(fast.start() + fast.feed_block(sse(*chunks)) + fast.finish()[0])
    slow_events = events_of(slow.start() + slow.feed(chunks) + slow.finish()[0])

    def minted_ids_masked(events: list[dict[str, Any]]) -> str:  # item ids are minted anew; the rest must agree
        return re.sub(r"(msg|fc)_[0-9a-f]{32}", r"\1_X", json.dumps(events))

    assert minted_ids_masked(fast_events) == minted_ids_masked(slow_events)
    assert fast.turn.text_so_far == slow.turn.text_so_far == "".join(tricky) + "after"
    quick, careful = MessagesStream("msg_1", "m", []), MessagesStream("msg_1", "m", [])
    # the same events (texts may be escaped as the upstream escaped them: the same JSON, not the same bytes)
    assert events_of(quick.feed_block(sse(*chunks))) == events_of(careful.feed(chunks))


def test_a_block_the_fast_framing_does_not_fit_is_parsed_event_by_event() -> None:
    from relaystack.frontends.chat_reader import parse_block

    assert parse_block(b'data: {"a":1}\n\n: ping\n\ndata: {"b":2}\n\n') == [{"a": 1}, {"b": 2}]
    assert parse_block(b'data: {"a":1}\n\ndata: [DONE]\n\n') == [{"a": 1}]
    assert parse_block(b'data:{"a":1}\n\n') == [{"a": 1}]


async def test_a_response_that_cannot_be_stored_is_counted_and_logged_with_its_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As for chat completions: the answer is sent anyway, the failure is visible in health and metrics."""
    from relaystack.counters import COUNTERS
    from relaystack.frontends.responses_routes import ResponsesRoutes, _Prepared

    class BrokenStore:
        async def put_response(self, *args: Any) -> None:
            raise OSError("disk full")

    routes = ResponsesRoutes(frontend=None, store=BrokenStore())  # type: ignore[arg-type]
    request = parse_responses_request({"model": "m", "input": "hi"})
    prepared = _Prepared(request, {"store": True}, {}, [], [])
    before = COUNTERS.store_failures
    with caplog.at_level(logging.ERROR):
        response = RenderedResponse("resp_123", 7, "m", "completed", b"{}")
        stored = await routes._store(prepared, response, ChatTurn())
    assert stored is False
    assert COUNTERS.store_failures == before + 1
    assert "Could not store response resp_123" in caplog.text


async def test_the_block_that_finishes_the_answer_goes_out_with_the_closing_events() -> None:
    """Written as the chat route writes streams: the head with the opening events in one write, each
    block as it comes, and the finishing block's events with response.completed, after the store."""
    from relaystack.api.asgi import STREAM_WRITER
    from relaystack.context import RequestContext
    from relaystack.frontends.pipeline import TrackedSend
    from relaystack.frontends.responses_routes import ResponsesRoutes, _Prepared
    from relaystack.providers.base import StreamReply

    async def blocks() -> Any:
        yield sse(chunk("Hel"), chunk("lo"))
        yield sse(chunk(" world", finish="stop"))

    class Frontend:
        async def send_chat(self, body: dict[str, Any], ctx: RequestContext) -> StreamReply:
            return StreamReply(blocks())

        async def settle(self, ctx: RequestContext, status: int, usage: Any) -> None:
            return None

    stored: list[RenderedResponse] = []

    class Store:
        async def put_response(self, response: RenderedResponse, *args: Any, **kwargs: Any) -> None:
            stored.append(response)

    writes: list[tuple[bool, bytes, bool]] = []  # (with the head, body, the response's end)

    def write_stream(send: Any, head: Any, pieces: list[bytes], end: bool) -> bool:
        writes.append((head is not None, b"".join(pieces), end))
        return True

    async def server_send(message: dict[str, Any]) -> None:
        raise AssertionError(f"written through the stream writer, not as ASGI messages: {message}")

    tracked = TrackedSend(server_send)
    routes = ResponsesRoutes(frontend=Frontend(), store=Store())  # type: ignore[arg-type]
    request = parse_responses_request({"model": "m", "input": "hi", "stream": True})
    prepared = _Prepared(request, {"model": "m", "store": True}, {}, [], [])
    await routes._stream(prepared, RequestContext("chat", api="responses"), tracked, {STREAM_WRITER: write_stream})

    assert [(head, end) for head, _, end in writes] == [(True, False), (False, False), (False, True)]
    assert [[e["type"] for e in events_of(body)] for _, body, _ in writes] == [
        ["response.created", "response.in_progress"],
        ["response.output_item.added", "response.content_part.added", "response.output_text.delta",
         "response.output_text.delta"],
        ["response.output_text.delta", "response.output_text.done", "response.content_part.done",
         "response.output_item.done", "response.completed"],
    ]  # fmt: skip
    assert tracked.started and len(stored) == 1
    assert events_of(writes[-1][1])[-1]["response"]["output"][0]["content"][0]["text"] == "Hello world"


def test_response_ids_sort_in_creation_order() -> None:
    """A response id starts with its time (as OpenAI's do): a store's id index takes new rows at its end."""
    from relaystack.frontends.responses_output import new_response_id

    ids = [new_response_id() for _ in range(200)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"resp_[0-9a-f]{32}", response_id) for response_id in ids)
