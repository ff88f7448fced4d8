"""The shared test setup: a llama-stack Together run.yaml and a fake Together behind relaystack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakes.fake_together import FakeTogether
from support.server import RunningServer

CHAT_MODEL = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"
EMBED_MODEL = "together/togethercomputer/m2-bert-80M-32k-retrieval"


def issue_config(**together_config: Any) -> dict[str, Any]:
    """A llama-stack-style run.yaml for Together (as examples/run.yaml), with provider config overrides."""
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
