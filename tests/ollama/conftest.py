"""Fixtures of the Ollama tests: a fake Ollama (tests/fakes/fake_ollama.py) behind `relaystack run`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from fakes.fake_ollama import FakeOllama
from support.server import RunningServer, start_server, write_config


def ollama_config(base_url: str, **config: Any) -> dict[str, Any]:
    """A llama-stack-style run.yaml with one keyless Ollama provider (models come from /api/tags)."""
    return {
        "version": 2,
        "providers": {"inference": [{"provider_id": "ollama", "provider_type": "remote::ollama",
                                     "config": {"base_url": base_url, **config}}]},
        "models": [],
    }


@dataclass
class OllamaStack:
    fake: FakeOllama
    server: RunningServer
    home: Path

    def client(self, **headers: str) -> OpenAI:
        return OpenAI(base_url=f"{self.server.base_url}/v1", api_key="unused", max_retries=0, timeout=60,
                      default_headers=headers or None)


@pytest.fixture(scope="module")
def ollama_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OllamaStack]:
    home = tmp_path_factory.mktemp("ollama-stack")
    fake = FakeOllama().start()
    config = write_config(home / "run.yaml", ollama_config(fake.base_url))
    server = start_server(config, home=home)
    try:
        yield OllamaStack(fake, server, home)
    finally:
        server.stop()
        fake.stop()


@pytest.fixture
def ollama(ollama_stack: OllamaStack) -> OllamaStack:
    ollama_stack.fake.reset()
    return ollama_stack
