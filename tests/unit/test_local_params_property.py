"""Property: the local models' request parsing never crashes on a body the API let through.

The embedded models take the body after api/validate.py; whatever it holds, parsing ends in a
request or in a 4xx naming the field, never in another exception (a 500)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaystack.api.validate import check_chat, check_completion, check_embeddings
from relaystack.errors import RelaystackError

params = pytest.importorskip("relaystack.local.params", reason="the local models' runtime is not installed")

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
keys = st.sampled_from(["messages", "prompt", "input", "stream", "stream_options", "n", "best_of", "temperature",
                        "top_p", "top_k", "min_p", "max_tokens", "max_completion_tokens", "seed", "stop", "tools",
                        "tool_choice", "logprobs", "top_logprobs", "logit_bias", "response_format", "echo",
                        "suffix", "encoding_format", "dimensions", "functions"])
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool"]) | values,
                                 "content": st.text(max_size=8) | values})
bodies = st.tuples(st.dictionaries(keys, values, max_size=6), st.lists(message, min_size=1, max_size=2),
                   st.text(max_size=10)).map(lambda t: {"model": "local/x", "messages": t[1], "prompt": t[2],
                                                         "input": t[2], **t[0]})


def _parse_or_4xx(check: Any, parse: Any, body: dict[str, Any]) -> None:
    try:
        check(body)
    except RelaystackError:
        return  # refused by the API layer already
    try:
        parse(body)
    except RelaystackError as exc:
        assert 400 <= exc.status_code < 500, exc


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_local_parsing_gives_a_request_or_a_4xx(body: dict[str, Any]) -> None:
    _parse_or_4xx(check_chat, params.parse_chat, body)
    _parse_or_4xx(check_completion, params.parse_completion, body)
    _parse_or_4xx(check_embeddings, lambda b: params.parse_embeddings(b, dimension=384), body)
