"""Every provider type relaystack knows, as data.

A plain OpenAI-compatible upstream is one ``CatalogRow``: no code. A provider whose API
differs names its class (``module:Class``), imported only when a config uses it, so
local engines' heavy imports never load for a remote-only server.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from relaystack.errors import ConfigError
from relaystack.providers.base import Provider
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.upstream.base import Upstream

__all__ = ["CATALOG", "CatalogRow", "build_provider"]


@dataclass(frozen=True, slots=True)
class CatalogRow:
    provider_type: str
    base_url: str | None = None
    api_key_field: str | None = None  # the X-LlamaStack-Provider-Data key
    api_key_env: str | None = None
    implementation: str | None = None  # "module:Class" when the base is not enough
    remote: bool = True


CATALOG: dict[str, CatalogRow] = {
    row.provider_type: row
    for row in (
        CatalogRow("remote::together", implementation="relaystack.providers.together:TogetherProvider"),
        CatalogRow("remote::openai", "https://api.openai.com/v1", "openai_api_key", "OPENAI_API_KEY"),
        CatalogRow("remote::fireworks", "https://api.fireworks.ai/inference/v1", "fireworks_api_key",
                   "FIREWORKS_API_KEY"),
        CatalogRow("remote::groq", "https://api.groq.com/openai/v1", "groq_api_key", "GROQ_API_KEY"),
        CatalogRow("remote::cerebras", "https://api.cerebras.ai/v1", "cerebras_api_key", "CEREBRAS_API_KEY"),
        CatalogRow("remote::sambanova", "https://api.sambanova.ai/v1", "sambanova_api_key", "SAMBANOVA_API_KEY"),
        CatalogRow("remote::llama-openai-compat", "https://api.llama.com/compat/v1", "llama_api_key",
                   "LLAMA_API_KEY"),
        CatalogRow("remote::nvidia", "https://integrate.api.nvidia.com/v1", "nvidia_api_key", "NVIDIA_API_KEY"),
        CatalogRow("remote::runpod", None, "runpod_api_token", "RUNPOD_API_TOKEN"),
        CatalogRow("remote::vllm", None, "vllm_api_token", "VLLM_API_TOKEN"),
        CatalogRow("remote::ollama", "http://localhost:11434/v1",
                   implementation="relaystack.providers.ollama:OllamaProvider"),
        CatalogRow("remote::openai-compat", None, "api_key"),
        CatalogRow("inline::llama-cpp", implementation="relaystack.providers.local:LlamaCppProvider", remote=False),
        CatalogRow("inline::sentence-transformers",
                   implementation="relaystack.providers.local:SentenceTransformersProvider", remote=False),
    )
}


def build_provider(provider_id: str, provider_type: str, config: dict[str, Any], upstream: Upstream) -> Provider:
    row = CATALOG.get(provider_type)
    if row is None:
        raise ConfigError(
            f"Unknown provider_type '{provider_type}' for provider '{provider_id}'. "
            f"Known: {', '.join(sorted(CATALOG))}. Any OpenAI-compatible service works as "
            "'remote::openai-compat' with config.base_url."
        )
    if not row.remote:
        local_cls: type[Provider] = _import(row.implementation or "")
        return local_cls(provider_id, config)  # type: ignore[call-arg]
    if row.implementation:
        remote_cls: type[OpenAICompatProvider] = _import(row.implementation)
        return remote_cls(provider_id, config, upstream)
    plain: type[OpenAICompatProvider] = type(
        "CatalogProvider",
        (OpenAICompatProvider,),
        {
            "provider_type": row.provider_type,
            "default_base_url": row.base_url,
            "provider_data_api_key_field": row.api_key_field,
            "api_key_env": row.api_key_env,
        },
    )
    return plain(provider_id, config, upstream)


def _import(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise ConfigError(f"Provider implementation {spec} cannot be imported: {exc}") from exc
