"""Shared fixtures: the fake Together (tests/fakes) and real `relaystack run` servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from fakes.fixtures import fake_together, fake_together_factory  # noqa: F401  (fixtures)
from support.server import RunningServer, start_server, write_config

CHAT_MODEL = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
EMBED_MODEL = "together/togethercomputer/m2-bert-80M-32k-retrieval"


def issue_config(**together_config: Any) -> dict[str, Any]:
    """The run.yaml of the server issue, verbatim but for the provider config overrides."""
    config: dict[str, Any] = {
        "api_key": "${env.TOGETHER_API_KEY:=}",
        "base_url": "${env.TOGETHER_BASE_URL:=https://api.together.xyz/v1}",
        "allowed_models": None,
        "refresh_models": True,
    }
    config.update(together_config)
    return {
        "version": 2,
        "providers": {"inference": [{"provider_id": "together", "provider_type": "remote::together",
                                     "config": config}]},
        "models": [
            {"model_id": CHAT_MODEL, "provider_id": "together",
             "provider_model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free", "model_type": "llm"},
            {"model_id": EMBED_MODEL, "provider_id": "together",
             "provider_model_id": "togethercomputer/m2-bert-80M-32k-retrieval", "model_type": "embedding",
             "metadata": {"embedding_dimension": 768}},
        ],
        "server": {"port": 8321},
    }


class Stack:
    """A fake Together and a relaystack server in front of it."""

    def __init__(self, fake: FakeTogether, server: RunningServer, home: Path) -> None:
        self.fake = fake
        self.server = server
        self.home = home

    @property
    def base_url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="module")
def together_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("together-stack")
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    config = write_config(home / "run.yaml", issue_config())
    server = start_server(config, home=home, env={"TOGETHER_API_KEY": DEFAULT_API_KEY,
                                                  "TOGETHER_BASE_URL": fake.base_url})
    try:
        yield Stack(fake, server, home)
    finally:
        server.stop()
        fake.stop()


@pytest.fixture
def stack(together_stack: Stack) -> Stack:
    together_stack.fake.reset()
    return together_stack
