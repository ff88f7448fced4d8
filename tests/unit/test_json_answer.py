"""JSON answers relayed as the upstream's bytes: the model id swapped only where it is provably
the top-level field, everything else byte for byte; any other layout falls back to the parsed object."""

from __future__ import annotations

import orjson
import pytest

from relaystack.errors import UpstreamProtocolError
from relaystack.providers.json_answer import relay_completion, relay_embeddings, swap_model_field
from relaystack.redaction import Redactor

COMPLETION = (b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06",'
              b'"choices":[{"index":0,"message":{"role":"assistant","content":"say \\"model\\": \\"x\\""},'
              b'"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}')


def test_a_completion_keeps_its_bytes_and_gets_the_callers_model() -> None:
    reply = relay_completion(COMPLETION, "openai/gpt-4o", "up")
    assert reply.raw == COMPLETION.replace(b'"model":"gpt-4o-2024-08-06"', b'"model":"openai/gpt-4o"')
    assert reply.data["model"] == "openai/gpt-4o" and orjson.loads(reply.raw) == reply.data
    assert reply.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_a_completion_already_naming_the_caller_is_relayed_as_the_same_bytes() -> None:
    reply = relay_completion(COMPLETION, "gpt-4o-2024-08-06", "up")
    assert reply.raw is COMPLETION


def test_spaces_and_escapes_around_the_model_field_are_swapped_exactly() -> None:
    raw = b'{\n  "id": "c1",\n  "model" :  "a\\/b\\u00e9",\n  "choices": []\n}'
    reply = relay_completion(raw, 'x"y', "up")
    assert reply.raw == b'{\n  "id": "c1",\n  "model":"x\\"y",\n  "choices": []\n}'
    assert orjson.loads(reply.raw)["model"] == 'x"y'


@pytest.mark.parametrize("raw", [
    b'{"model":"a","choices":[{"message":{"model":"a"}}]}',  # a second "model" key: which is which?
    b'{"id":"c1","choices":[]}',  # no model at all: the caller's is added
    b'{"model":5,"choices":[]}',
])
def test_any_other_layout_falls_back_to_the_parsed_object(raw: bytes) -> None:
    reply = relay_completion(raw, "caller", "up")
    assert reply.raw is None and reply.data["model"] == "caller"


@pytest.mark.parametrize("raw", [b"<html>bad gateway</html>", b"[1, 2]", b'{"a": 1'])
def test_a_completion_that_is_not_a_json_object_is_an_upstream_protocol_error(raw: bytes) -> None:
    with pytest.raises(UpstreamProtocolError):
        relay_completion(raw, "caller", "up")


def test_swap_model_field_checks_the_value_it_replaces() -> None:
    assert swap_model_field(b'{"model":"a"}', "b", "c") is None
    assert swap_model_field(b'{"model":"a"}', "a", "c") == b'{"model":"c"}'


def _embeddings(items: int, *, model_first: bool = False) -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": [0.0123, -4.5e-05, 1.0]} for i in range(items)]
    usage = {"prompt_tokens": 3, "total_tokens": 3}
    if model_first:  # vLLM's layout
        return orjson.dumps({"id": "e1", "object": "list", "created": 1, "model": "up-model", "data": data,
                             "usage": usage})
    return orjson.dumps({"object": "list", "data": data, "model": "up-model", "usage": usage})  # OpenAI's


@pytest.mark.parametrize("model_first", [False, True])
@pytest.mark.parametrize("indent", [False, True])
def test_an_embeddings_answer_is_relayed_without_its_array_parsed(model_first: bool, indent: bool) -> None:
    raw = _embeddings(3, model_first=model_first)
    if indent:
        raw = orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2)
    reply = relay_embeddings(raw, "caller")
    assert reply is not None and reply.raw is not None
    assert reply.usage == {"prompt_tokens": 3, "total_tokens": 3}
    assert orjson.loads(reply.raw) == {**orjson.loads(raw), "model": "caller"}
    start = raw.index(b'"data"')
    assert raw[start:raw.rindex(b"]") + 1] in reply.raw  # the array itself, byte for byte
    same = relay_embeddings(raw, "up-model")
    assert same is not None and same.raw is raw


@pytest.mark.parametrize("raw", [
    b'{"object":"list","data":[{"embedding":[1]}],"usage":{"total_tokens":1}}',  # no model
    b'{"object":"list","data":[{"embedding":[1]}],"model":"m"}',  # no usage
    b'{"model":"m","data":[{"embedding":[1]}],"model":"n","usage":{}}',  # a model on each side
    b'{"meta":{"data":[1]},"data":[{"embedding":[1]}],"model":"m","usage":{}}',  # "data" nested first
    b'{"object":"list","data":{"a":[1]},"model":"m","usage":{}}',  # data is not an array
    b'{"data":[{"embedding":[1]}],"x":[{"model":"m","usage":{}}]}',  # model and usage inside an array
    b'{"object":"list","data":[1],"model":"m]","usage":{}}',  # a "]" after the array
    b'{"object":"list","data":[1] "model":"m","usage":{}}',  # not JSON around the array
])
def test_an_embeddings_answer_of_another_layout_is_left_to_the_full_parse(raw: bytes) -> None:
    assert relay_embeddings(raw, "caller") is None


def test_the_wire_scan_finds_a_secret_wherever_its_rare_bytes_first_occur() -> None:
    redactor = Redactor(["sk-proj-Zq8vN3xK9pL2mR7tY4wB6cD1fG5hJ0aE", "12345678901"])
    floats = b"[" + b",".join(b"0.%09d" % i for i in range(2000)) + b"]"
    assert redactor.wire(floats) is floats  # digits only: the letter form is skipped at once
    key = b"sk-proj-Zq8vN3xK9pL2mR7tY4wB6cD1fG5hJ0aE"
    for data in (b"Z J K" + floats + key, key + floats, floats[:500] + key + floats[500:]):
        assert key not in redactor.wire(data) and b"[REDACTED]" in redactor.wire(data)
    assert redactor.wire(b"[0.12345678901]") == b"[0.[REDACTED]]"  # a form with no rare byte: a full search
