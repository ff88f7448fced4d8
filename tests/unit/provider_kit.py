"""Helpers for provider unit tests on the in-process seam double (``relaystack.upstream.mock``)."""

from __future__ import annotations

from typing import Any

from relaystack.providers.base import CallContext, ModelEntry, ModelType
from relaystack.providers.catalog import build_provider
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.mock import MockResponse, MockUpstream

__all__ = ["CHAT_OK", "call", "chat_ok", "make"]

CHAT_OK = {
    "id": "c1", "object": "chat.completion", "created": 1, "model": "upstream",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def chat_ok(request: UpstreamRequest) -> MockResponse:
    return MockResponse.json(CHAT_OK)


def make(provider_type: str, config: dict[str, Any], handler: Any = chat_ok,
         provider_id: str | None = None) -> tuple[OpenAICompatProvider, MockUpstream]:
    upstream = MockUpstream(handler)
    provider = build_provider(provider_id or provider_type.split("::")[1], provider_type, config, upstream)
    assert isinstance(provider, OpenAICompatProvider)
    return provider, upstream


def call(provider: OpenAICompatProvider, upstream_model: str, kind: ModelType = "llm",
         provider_data: dict[str, Any] | None = None) -> CallContext:
    entry = ModelEntry(f"{provider.provider_id}/{upstream_model}", provider.provider_id, upstream_model, kind)
    return CallContext(model=entry, requested_model=entry.identifier, provider_data=provider_data)
