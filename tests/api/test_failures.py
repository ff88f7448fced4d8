"""What clients see when things go wrong: OpenAI-shaped errors, the right status, no fake `stop`."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from support.stack import CHAT_MODEL, EMBED_MODEL, Stack

HELLO = [{"role": "user", "content": "Hello, world!"}]


def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0)


def post(stack: Stack, path: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{stack.base_url}{path}", json=body, **kwargs)  # type: ignore[arg-type]


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in error["message"]
    return error  # type: ignore[no-any-return]


def test_unknown_model_is_404_naming_close_matches(stack: Stack) -> None:
    response = post(stack, "/v1/chat/completions",
                    {"model": "together/meta-llama/Llama-3.3-70B-Instruct-Turbo-Fre", "messages": HELLO})
    error = assert_openai_error(response, 404)
    assert CHAT_MODEL in str(error["message"])
    assert error["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": CHAT_MODEL, "messages": []}, "messages"),
        ({"model": CHAT_MODEL}, "messages"),
        ({"messages": HELLO}, "model"),
        ({"model": CHAT_MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": CHAT_MODEL, "messages": [{"role": [], "content": "x"}]}, "messages[0].role"),
        ({"model": CHAT_MODEL, "messages": [{"role": {}, "content": "x"}]}, "messages[0].role"),
        ({"model": CHAT_MODEL, "messages": HELLO, "tool_choice": "auto"}, "tool_choice"),
        ({"model": CHAT_MODEL, "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": CHAT_MODEL, "messages": HELLO, "temperature": "hot"}, "temperature"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(stack: Stack, body: dict[str, object], param: str) -> None:
    error = assert_openai_error(post(stack, "/v1/chat/completions", body), 400)
    assert error["param"] == param
    assert stack.fake.requests == []


# characters str.isdigit() accepts that are not ASCII digits: superscript two, Arabic-Indic one,
# fullwidth one ('?limit=%C2%B2' was a 500)
NOT_ASCII_DIGITS = ["\u00b2", "\u0661", "\uff11"]


@pytest.mark.parametrize("digit", NOT_ASCII_DIGITS, ids=["superscript", "arabic-indic", "fullwidth"])
def test_a_number_query_parameter_takes_ascii_digits_only(stack: Stack, digit: str) -> None:
    made = client(stack).responses.create(model=CHAT_MODEL, input="Hello")
    for path in ("/v1/chat/completions", "/v1/responses", f"/v1/responses/{made.id}/input_items"):
        error = assert_openai_error(httpx.get(f"{stack.base_url}{path}", params={"limit": digit}), 400)
        assert error["param"] == "limit", path


def test_invalid_json_is_400(stack: Stack) -> None:
    response = httpx.post(f"{stack.base_url}/v1/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert "not valid JSON" in str(assert_openai_error(response, 400)["message"])


def test_body_over_the_limit_is_413(stack: Stack) -> None:
    huge = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "x" * (17 * 1024 * 1024)}]}
    assert_openai_error(post(stack, "/v1/chat/completions", huge), 413)


def test_embedding_model_used_for_chat_is_400(stack: Stack) -> None:
    error = assert_openai_error(post(stack, "/v1/chat/completions", {"model": EMBED_MODEL, "messages": HELLO}), 400)
    assert "embedding" in str(error["message"])


def test_upstream_429_passes_through_with_retry_after(stack: Stack) -> None:
    stack.fake.fail_next(429, retry_after=7)
    response = post(stack, "/v1/chat/completions", {"model": CHAT_MODEL, "messages": HELLO})
    assert_openai_error(response, 429)
    assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize("status", [400, 401, 500, 503])
def test_upstream_errors_keep_their_status(stack: Stack, status: int) -> None:
    stack.fake.fail_next(status)
    assert_openai_error(post(stack, "/v1/chat/completions", {"model": CHAT_MODEL, "messages": HELLO}), status)


def test_upstream_error_on_a_stream_request_is_a_real_status_not_200(stack: Stack) -> None:
    stack.fake.fail_next(503, retry_after=1)
    response = post(stack, "/v1/chat/completions", {"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    assert_openai_error(response, 503)


def test_a_stream_cut_mid_way_raises_in_the_sdk_and_never_looks_finished(stack: Stack) -> None:
    stack.fake.cut_stream_after(2)
    stream = client(stack).chat.completions.create(model=CHAT_MODEL, messages=HELLO, stream=True)
    seen = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            seen.append(chunk)
    assert all(c.choices[0].finish_reason is None for c in seen if c.choices)


def test_a_cut_stream_ends_with_an_error_event_and_no_done(stack: Stack) -> None:
    stack.fake.cut_stream_after(2)
    response = post(stack, "/v1/chat/completions", {"model": CHAT_MODEL, "messages": HELLO, "stream": True})
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    assert "error" in orjson.loads(events[-1])


def test_a_client_that_disconnects_cancels_the_upstream_stream(stack: Stack) -> None:
    stack.fake.slow_stream(0.2)
    with httpx.stream("POST", f"{stack.base_url}/v1/chat/completions",
                      json={"model": CHAT_MODEL, "messages": HELLO, "stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # one event, then hang up
    assert stack.fake.wait_for_disconnect(timeout=10)


def test_provider_data_that_is_not_json_is_400(stack: Stack) -> None:
    response = post(stack, "/v1/chat/completions", {"model": CHAT_MODEL, "messages": HELLO},
                    headers={"X-LlamaStack-Provider-Data": "not json"})
    error = assert_openai_error(response, 400)
    assert "not json" not in str(error["message"])
    assert stack.fake.requests == []


def test_unknown_route_is_an_openai_shaped_404(stack: Stack) -> None:
    error = assert_openai_error(httpx.get(f"{stack.base_url}/v1/nothing-here"), 404)
    assert "openapi.json" in str(error["message"])


def test_faults_are_refused_outside_replay_mode(stack: Stack) -> None:
    response = post(stack, "/v1/chat/completions", {"model": CHAT_MODEL, "messages": HELLO},
                    headers={"X-Relaystack-Fault": "status=500"})
    assert_openai_error(response, 400)
    assert stack.fake.requests == []
