"""vLLM (``remote::vllm``): your own OpenAI-compatible vLLM server.

| quirk                                                                | what relaystack does                          |
|----------------------------------------------------------------------|-----------------------------------------------|
| usually no key                                                       | none needed: no ``Authorization`` header      |
|                                                                      | without ``api_token``                         |
| ``url`` is the server's ``/v1``                                      | used as it is                                 |
| self-signed certificates                                             | ``tls_verify: false`` or a CA bundle path     |
| ``/v1/models`` says nothing of a model's task                        | typed by name: ``embed`` -> embedding,        |
|                                                                      | ``rerank`` -> rerank (llama-stack's rule);    |
|                                                                      | ``max_model_len`` kept as context_length      |
| llama-stack sends a default ``max_tokens`` (config, 4096)            | added when the request sets neither           |
|                                                                      | ``max_tokens`` nor ``max_completion_tokens``  |
| rerank is Jina-style at ``{url without /v1}/rerank``:                | translated; results sorted best first,        |
| ``{"query", "documents", "top_n"}`` -> ``{"results": [{"index",      | ``max_num_results`` becomes ``top_n``         |
| "relevance_score"}]}``                                               |                                               |
| per-request token                                                    | ``vllm_api_token``                            |

Config keys: ``url`` (``base_url``), ``api_token`` (``api_key``), ``max_tokens``, ``tls_verify``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from relaystack.providers.base import CallContext, ModelEntry, ModelType
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.rerank import RerankQuery
from relaystack.providers.settings import RemoteSettings

__all__ = ["VLLMProvider", "VLLMSettings"]


class VLLMSettings(RemoteSettings):
    max_tokens: int | None = Field(4096, ge=1)

    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        return {
            "url": "${env.VLLM_URL:=}",
            "max_tokens": "${env.VLLM_MAX_TOKENS:=4096}",
            "api_token": "${env.VLLM_API_TOKEN:=fake}",
            "tls_verify": "${env.VLLM_TLS_VERIFY:=true}",
        }


class VLLMProvider(OpenAICompatProvider):
    provider_type = "remote::vllm"
    Settings = VLLMSettings
    settings: VLLMSettings

    def model_type_for(self, upstream_id: str) -> ModelType:
        lowered = upstream_id.lower()
        if "rerank" in lowered:
            return "rerank"
        if "embed" in lowered:
            return "embedding"
        return super().model_type_for(upstream_id)

    def models_from_listing(self, listing: Any) -> list[ModelEntry]:
        items = listing.get("data", []) if isinstance(listing, dict) else []
        entries = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            length = item.get("max_model_len")
            extra = {"context_length": length} if isinstance(length, int) else {}
            entries.append(self.entry_for(item["id"], None, **extra))
        return entries

    def prepare_chat(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        prepared = super().prepare_chat(body, call)
        default = self.settings.max_tokens
        if default and "max_tokens" not in body and "max_completion_tokens" not in body:
            prepared["max_tokens"] = default
        return prepared

    def rerank_request(self, query: RerankQuery, call: CallContext) -> tuple[str, dict[str, Any]]:
        _, body = super().rerank_request(query, call)
        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        return root + "/rerank", body
