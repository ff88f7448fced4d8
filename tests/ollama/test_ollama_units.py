"""OllamaProvider's request fixes and config, without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relaystack.errors import ConfigError
from relaystack.providers.base import CallContext, ModelEntry
from relaystack.providers.catalog import build_provider
from relaystack.providers.ollama import OllamaProvider
from relaystack.recording.responses import ReplayResponse


class NoUpstream:
    async def send(self, request: Any) -> Any:
        raise AssertionError("no call expected")

    async def aclose(self) -> None:
        pass


def provider(**config: Any) -> OllamaProvider:
    built = build_provider("ollama", "remote::ollama", config, NoUpstream())  # type: ignore[arg-type]
    assert isinstance(built, OllamaProvider)
    return built


def call(model: str = "llama3.2:3b", api: str = "openai") -> CallContext:
    return CallContext(ModelEntry(f"ollama/{model}", "ollama", model), f"ollama/{model}", api=api)


def test_base_url_with_or_without_v1() -> None:
    assert provider().base_url == "http://localhost:11434/v1"
    legacy = provider(url="http://10.0.0.5:11434")
    assert (legacy.base_url, legacy.native_root) == ("http://10.0.0.5:11434/v1", "http://10.0.0.5:11434")


def test_reasoning_effort_defaults_to_none_only_for_the_responses_api() -> None:
    body = {"model": "ollama/gpt-oss:20b", "messages": []}
    assert "reasoning_effort" not in provider().prepare_chat(body, call("gpt-oss:20b"))
    assert provider().prepare_chat(body, call("gpt-oss:20b", api="responses"))["reasoning_effort"] == "none"
    chosen = {**body, "reasoning_effort": "high"}
    assert provider().prepare_chat(chosen, call("gpt-oss:20b", api="responses"))["reasoning_effort"] == "high"


class Tags:
    """An Ollama that answers /api/tags only."""

    def __init__(self, *names: str) -> None:
        self.names = names

    async def send(self, request: Any) -> Any:
        assert request.url.endswith("/api/tags") and request.method == "GET"
        body = json.dumps({"models": [{"name": n, "model": n, "details": {"family": "llama"}} for n in self.names]})
        return ReplayResponse(200, {"content-type": "application/json"}, [body.encode()], stream=False)

    async def aclose(self) -> None:
        pass


async def test_a_bare_name_becomes_its_latest_tag_only_when_that_is_what_is_pulled() -> None:
    p = OllamaProvider("ollama", {}, Tags("llama3.2:latest", "qwen3"))  # type: ignore[arg-type]
    assert p.upstream_name("llama3.2") == "llama3.2"  # nothing listed yet: as configured
    listed = {e.identifier: e.provider_resource_id for e in await p.list_models() or []}
    assert listed == {"ollama/llama3.2:latest": "llama3.2:latest", "ollama/llama3.2": "llama3.2:latest",
                      "ollama/qwen3": "qwen3"}
    assert p.upstream_name("llama3.2") == "llama3.2:latest"
    assert p.upstream_name("qwen3") == "qwen3"
    assert p.upstream_name("llama3.2:1b") == "llama3.2:1b"


@pytest.mark.parametrize(("key", "value"), [("download_images", "maybe"), ("max_image_bytes", 0)])
def test_bad_config_values_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        provider(**{key: value})
