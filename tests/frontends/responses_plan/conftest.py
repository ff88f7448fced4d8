"""llama-stack v0.7.1's Responses suite, reimplemented: one `relaystack run --record-mode replay` over
the recordings in ./recordings (copied from llama-stack's, unchanged), an OpenAI provider serving
``openai/gpt-4o`` and ``openai/o4-mini`` as llama-stack's `ci-tests` setup named them.

Each test sends llama-stack's own test id in ``X-LlamaStack-Provider-Data: {"__test_id": ...}``,
as llama-stack's test client did, so a recording layer that matches by test id picks the very
recording of that test; the content of the upstream request is matched either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_stack_client import LlamaStackClient
from openai import OpenAI

from support.server import RunningServer, start_server, write_config

RECORDINGS = Path(__file__).parent / "recordings"
TEXT_MODEL = "openai/gpt-4o"
REASONING_MODEL = "openai/o4-mini"
CONFIG: dict[str, Any] = {
    "version": 2,
    "providers": {"inference": [{"provider_id": "openai", "provider_type": "remote::openai",
                                 "config": {"api_key": "${env.OPENAI_API_KEY:=}"}}]},
    "models": [
        {"model_id": TEXT_MODEL, "provider_id": "openai", "provider_model_id": "gpt-4o", "model_type": "llm"},
        {"model_id": REASONING_MODEL, "provider_id": "openai", "provider_model_id": "o4-mini", "model_type": "llm"},
    ],
}  # fmt: skip
SUITE = "tests/integration/responses/"


@pytest.fixture(scope="session")
def plan_server(tmp_path_factory: pytest.TempPathFactory, recording_env: dict[str, str]) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("responses-plan")
    used_log = {k: v for k, v in recording_env.items() if k == "RELAYSTACK_RECORDINGS_USED_LOG"}
    env = {"OPENAI_API_KEY": "", **used_log}  # replay needs no key, and a real one must not leak into a run
    args = ["--record-mode", "replay", "--recordings", str(RECORDINGS)]
    server = start_server(write_config(home / "run.yaml", CONFIG), home=home, args=args, env=env)
    try:
        yield server
    finally:
        server.stop()


def _provider_data(test_id: str) -> dict[str, str]:
    return {"X-LlamaStack-Provider-Data": json.dumps({"__test_id": SUITE + test_id})}


@pytest.fixture
def openai_for(plan_server: RunningServer) -> Callable[[str], OpenAI]:
    """An OpenAI SDK client that names llama-stack's test ``test_id`` (``file.py::test[params]``)."""

    def make(test_id: str) -> OpenAI:
        return OpenAI(base_url=f"{plan_server.base_url}/v1", api_key="fake", max_retries=0, timeout=60,
                      default_headers=_provider_data(test_id))  # fmt: skip

    return make


@pytest.fixture(params=["openai_client", "client_with_models"])
def compat_for(request: pytest.FixtureRequest, plan_server: RunningServer) -> Callable[[str], Any]:
    """llama-stack's ``responses_client``: the OpenAI SDK, then llama-stack-client; ``{client}`` in the
    test id becomes the client's name, as in llama-stack's parametrization."""

    def make(test_id: str) -> Any:
        named = test_id.replace("{client}", request.param)
        if request.param == "openai_client":
            return OpenAI(base_url=f"{plan_server.base_url}/v1", api_key="fake", max_retries=0, timeout=60,
                          default_headers=_provider_data(named))  # fmt: skip
        return LlamaStackClient(base_url=plan_server.base_url, max_retries=0, timeout=60,
                                default_headers=_provider_data(named))  # fmt: skip

    return make

