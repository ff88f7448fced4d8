"""Both front-ends over the embedded chat model, offline: a real server whose Python processes refuse
any non-loopback connection (tests/local/netguard), driven by the openai and anthropic SDKs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from openai import OpenAI

from support.server import RunningServer, start_server, write_config

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "local"))
from localmodels import LOCAL  # noqa: E402

pytestmark = LOCAL

MODEL = "local/smollm2-135m-instruct"
CONFIG = {
    "version": 2,
    "providers": {"inference": [{"provider_id": "local", "provider_type": "inline::llama-cpp",
                                 "config": {"preload": True}}]},
    "models": [],
}  # fmt: skip


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    home = tmp_path_factory.mktemp("local-frontends")
    net_log = home / "net.log"
    env = {
        "PYTHONPATH": os.pathsep.join([str(TESTS / "local" / "netguard"), os.environ.get("PYTHONPATH", "")]),
        "NETGUARD_LOG": str(net_log),
    }
    server = start_server(write_config(home / "run.yaml", CONFIG), home=home, env=env, wait_ready=True,
                          timeout_s=240)  # fmt: skip
    try:
        yield server, net_log
    finally:
        server.stop()


def test_responses_and_messages_answer_offline_and_count_exactly(local_server: tuple[RunningServer, Path]) -> None:
    server, net_log = local_server
    client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
    response = client.responses.create(model=MODEL, input="What is 2+2?", max_output_tokens=16, temperature=0)
    assert response.status in ("completed", "incomplete") and response.output_text.strip()
    assert response.usage is not None and response.usage.input_tokens > 0
    with client.responses.stream(model=MODEL, input="What is 2+2?", max_output_tokens=16, temperature=0) as stream:
        streamed = stream.get_final_response()
    assert streamed.output_text == response.output_text  # greedy: the same answer either way
    follow = client.responses.create(model=MODEL, input="And 3+3?", previous_response_id=response.id,
                                     max_output_tokens=16)  # fmt: skip
    assert follow.usage is not None and follow.usage.input_tokens > response.usage.input_tokens

    claude = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
    question = [{"role": "user", "content": "What is 2+2?"}]
    message = claude.messages.create(model=MODEL, max_tokens=16, messages=question, extra_body={"temperature": 0})
    assert message.content[0].type == "text" and message.content[0].text.strip()
    with claude.messages.stream(model=MODEL, max_tokens=16, messages=question, extra_body={"temperature": 0}) as events:
        assert "".join(events.text_stream) == message.content[0].text
    counted = claude.messages.with_raw_response.count_tokens(model=MODEL, messages=question)
    assert counted.headers["x-relaystack-token-count"] == "exact"
    assert counted.parse().input_tokens == message.usage.input_tokens
    assert not net_log.exists() or net_log.read_text() == "", net_log.read_text()
