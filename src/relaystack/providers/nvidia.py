"""NVIDIA NIM (``remote::nvidia``): the hosted API catalog or your own NIM.

| quirk                                                                | what relaystack does                          |
|----------------------------------------------------------------------|-----------------------------------------------|
| hosted (``integrate.api.nvidia.com``) needs a key; a self-hosted NIM | key required only for NVIDIA's hosts; no      |
| none                                                                 | ``Authorization`` header without a key        |
| ``url`` is the host; the API is under ``/v1``                        | ``/v1`` appended unless                       |
|                                                                      | ``append_api_version: false``                 |
| asymmetric embedding models need ``input_type`` (``query`` or        | ``input_type: query`` added when absent;      |
| ``passage``) and take ``truncate`` (``NONE``/``START``/``END``)      | both passed through as the client set them    |
| rerank: ``POST .../ranking`` with ``{"query": {"text"},              | translated both ways; hosted models use their |
| "passages": [{"text"}]}`` answering ``{"rankings": [{"index",        | own URL (``rerank_model_to_url``), a NIM its  |
| "logit"}]}``; hosted rerank models each have their own URL           | ``{url}/v1/ranking``                          |
| hosted rerank models are not in ``/models``                          | listed from ``rerank_model_to_url``; those    |
|                                                                      | and ids naming ``rerank`` typed ``rerank``    |
| per-request key                                                      | ``nvidia_api_key``                            |

Config keys: ``url`` (``base_url``), ``api_key``, ``append_api_version``, ``timeout``,
``rerank_model_to_url``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from relaystack.errors import UpstreamProtocolError
from relaystack.providers.base import CallContext, ModelEntry, ModelType
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.rerank import RerankQuery
from relaystack.providers.settings import RemoteSettings

__all__ = ["NvidiaProvider", "NvidiaSettings"]

_HOSTED = ("integrate.api.nvidia.com", "ai.api.nvidia.com")
_RETRIEVAL = "https://ai.api.nvidia.com/v1/retrieval/nvidia"
DEFAULT_RERANK_URLS = {
    "nv-rerank-qa-mistral-4b:1": f"{_RETRIEVAL}/reranking",
    "nvidia/nv-rerankqa-mistral-4b-v3": f"{_RETRIEVAL}/nv-rerankqa-mistral-4b-v3/reranking",
    "nvidia/llama-3.2-nv-rerankqa-1b-v2": f"{_RETRIEVAL}/llama-3_2-nv-rerankqa-1b-v2/reranking",
}


class NvidiaSettings(RemoteSettings):
    append_api_version: bool = True
    rerank_model_to_url: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RERANK_URLS))

    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        return {
            "url": "${env.NVIDIA_BASE_URL:=https://integrate.api.nvidia.com}",
            "api_key": "${env.NVIDIA_API_KEY:=}",
            "append_api_version": "${env.NVIDIA_APPEND_API_VERSION:=True}",
        }


class NvidiaProvider(OpenAICompatProvider):
    provider_type = "remote::nvidia"
    Settings = NvidiaSettings
    settings: NvidiaSettings

    def resolve_base_url(self) -> str:
        url = (self.settings.base_url or self.spec.base_url or "").rstrip("/")
        self.hosted = (urlsplit(url).hostname or "") in _HOSTED
        self.key_required = self.hosted
        if self.settings.append_api_version and not url.endswith("/v1"):
            url += "/v1"
        return url

    def model_type_for(self, upstream_id: str) -> ModelType:
        if upstream_id in self.settings.rerank_model_to_url or "rerank" in upstream_id.lower():
            return "rerank"
        return super().model_type_for(upstream_id)

    def models_from_listing(self, listing: Any) -> list[ModelEntry]:
        entries = super().models_from_listing(listing)
        listed = {e.provider_resource_id for e in entries}
        if self.hosted:
            entries += [self.entry_for(m, "rerank") for m in self.settings.rerank_model_to_url if m not in listed]
        return entries

    def prepare_embeddings(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        prepared = {**body, "model": call.upstream_model}
        prepared.setdefault("input_type", "query")
        return prepared

    def rerank_request(self, query: RerankQuery, call: CallContext) -> tuple[str, dict[str, Any]]:
        url = self.settings.rerank_model_to_url.get(call.upstream_model) if self.hosted else None
        body = {
            "model": call.upstream_model,
            "query": {"text": query.query},
            "passages": [{"text": item} for item in query.items],
        }
        return url or self.url_for("/ranking", call), body

    def rerank_results(self, data: dict[str, Any]) -> list[tuple[int, float]]:
        rankings = data.get("rankings")
        if not isinstance(rankings, list):
            raise UpstreamProtocolError(f"{self.label}: the ranking answer has no 'rankings' list.")
        try:
            return [(int(r["index"]), float(r["logit"])) for r in rankings]
        except (KeyError, TypeError, ValueError):
            raise UpstreamProtocolError(f"{self.label}: a ranking lacks 'index' or 'logit'.") from None
