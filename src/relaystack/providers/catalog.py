"""Every provider type relaystack knows, as data: one ``ProviderSpec`` row each.

A plain OpenAI-compatible upstream is one row and no code: its class (named after the row,
e.g. ``GroqProvider``) is made here from the shared base. A provider whose API differs
names its module's class (``module:Class``), imported only when a config uses it, so a
remote-only server never loads the local engines (nor botocore, google-auth or oci).
Rows carry what a provider needs: where it lives, its per-request key field and key
variable, whether it needs a key at all, what it can do, its known embedding models with
their dimensions, and headers every call carries.
"""

from __future__ import annotations

import importlib
from typing import Any

from relaystack.errors import ConfigError
from relaystack.providers.base import Provider
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.settings import RemoteSettings
from relaystack.providers.spec import Capabilities, ProviderSpec
from relaystack.upstream.base import Upstream

__all__ = ["CATALOG", "CatalogRow", "build_provider", "provider_class", "settings_class"]

CatalogRow = ProviderSpec  # the name earlier code used

_M = "relaystack.providers."
# llama-stack's embedding model metadata (dimensions from each provider's model docs)
OPENAI_EMBEDDINGS = {
    "text-embedding-3-small": {"embedding_dimension": 1536, "context_length": 8192},
    "text-embedding-3-large": {"embedding_dimension": 3072, "context_length": 8192},
    "text-embedding-ada-002": {"embedding_dimension": 1536, "context_length": 8192},
}
NO_IMAGES_NO_EMBEDDINGS = Capabilities(embeddings=False, images="none")

_ROWS = (
    ProviderSpec(
        "remote::openai", "OpenAIProvider", "https://api.openai.com/v1", "openai_api_key", "OPENAI_API_KEY",
        embedding_models=OPENAI_EMBEDDINGS, implementation=_M + "openai:OpenAIProvider",
        summary="OpenAI; max_tokens clamped to each model's output limit",
    ),
    ProviderSpec(
        "remote::azure", "AzureProvider", None, "azure_api_key", "AZURE_API_KEY",
        embedding_models=OPENAI_EMBEDDINGS, implementation=_M + "azure:AzureProvider",
        summary="Azure OpenAI v1 API ({api_base}/openai/v1), api-key header",
    ),
    ProviderSpec(
        "remote::anthropic", "AnthropicProvider", "https://api.anthropic.com/v1", "anthropic_api_key",
        "ANTHROPIC_API_KEY", capabilities=Capabilities(completions=False, embeddings=False),
        default_headers={"anthropic-version": "2023-06-01"}, implementation=_M + "anthropic:AnthropicProvider",
        summary="Claude through Anthropic's OpenAI-compatible endpoint; models from its own listing",
    ),
    ProviderSpec(
        "remote::gemini", "GeminiProvider", "https://generativelanguage.googleapis.com/v1beta/openai",
        "gemini_api_key", "GEMINI_API_KEY", capabilities=Capabilities(completions=False, images="base64"),
        embedding_models={
            "models/text-embedding-004": {"embedding_dimension": 768, "context_length": 2048},
            "models/gemini-embedding-001": {"embedding_dimension": 3072, "context_length": 2048},
        },
        implementation=_M + "gemini:GeminiProvider",
        summary="Gemini's OpenAI-compatible endpoint; API key, access token or ADC (OAuth, refreshed)",
    ),
    ProviderSpec(
        "remote::vertexai", "VertexAIProvider", None, "vertex_access_token", "VERTEX_AI_ACCESS_TOKEN",
        key_required=False, capabilities=Capabilities(completions=False, embeddings=False),
        implementation=_M + "gemini:VertexAIProvider",
        summary="Vertex AI through its OpenAI-compatible endpoint; ADC OAuth tokens, refreshed",
    ),
    ProviderSpec(
        "remote::bedrock", "BedrockProvider", None, "aws_bearer_token_bedrock", "AWS_BEARER_TOKEN_BEDROCK",
        key_required=False, capabilities=Capabilities(completions=False, embeddings=False, stream_options=False),
        implementation=_M + "bedrock:BedrockProvider",
        summary="Bedrock's OpenAI-compatible endpoint; SigV4 (botocore) or a Bedrock API key",
    ),
    ProviderSpec(
        "remote::cerebras", "CerebrasProvider", "https://api.cerebras.ai/v1", "cerebras_api_key", "CEREBRAS_API_KEY",
        capabilities=NO_IMAGES_NO_EMBEDDINGS, summary="Cerebras; no embeddings",
    ),
    ProviderSpec(
        "remote::databricks", "DatabricksProvider", None, "databricks_api_token", "DATABRICKS_TOKEN",
        capabilities=Capabilities(completions=False),
        embedding_models={
            "databricks-gte-large-en": {"embedding_dimension": 1024, "context_length": 8192},
            "databricks-bge-large-en": {"embedding_dimension": 1024, "context_length": 512},
        },
        implementation=_M + "databricks:DatabricksProvider",
        summary="Databricks serving endpoints; models from the workspace API; no completions",
    ),
    ProviderSpec(
        "remote::fireworks", "FireworksProvider", "https://api.fireworks.ai/inference/v1", "fireworks_api_key",
        "FIREWORKS_API_KEY",
        embedding_models={
            "nomic-ai/nomic-embed-text-v1.5": {"embedding_dimension": 768, "context_length": 8192},
            "accounts/fireworks/models/nomic-embed-text-v1p5": {"embedding_dimension": 768, "context_length": 8192},
        },
        summary="Fireworks AI",
    ),
    ProviderSpec(
        "remote::groq", "GroqProvider", "https://api.groq.com/openai/v1", "groq_api_key", "GROQ_API_KEY",
        capabilities=Capabilities(embeddings=False), summary="Groq; no embeddings",
    ),
    ProviderSpec(
        "remote::llama-openai-compat", "LlamaOpenAICompatProvider", "https://api.llama.com/compat/v1",
        "llama_api_key", "LLAMA_API_KEY", capabilities=Capabilities(completions=False, embeddings=False),
        summary="Meta's Llama API (OpenAI-compatible); no completions, no embeddings",
    ),
    ProviderSpec(
        "remote::llama-cpp-server", "LlamaCppServerProvider", "http://localhost:8080/v1", None, None,
        key_required=False, sample={"base_url": "${env.LLAMA_CPP_SERVER_URL:=http://localhost:8080/v1}"},
        summary="your llama.cpp server (llama-server); no key needed",
    ),
    ProviderSpec(
        "remote::nvidia", "NvidiaProvider", "https://integrate.api.nvidia.com", "nvidia_api_key", "NVIDIA_API_KEY",
        capabilities=Capabilities(rerank=True),
        embedding_models={
            "nvidia/llama-3.2-nv-embedqa-1b-v2": {"embedding_dimension": 2048, "context_length": 8192},
            "nvidia/nv-embedqa-e5-v5": {"embedding_dimension": 1024, "context_length": 512},
            "nvidia/nv-embedqa-mistral-7b-v2": {"embedding_dimension": 4096, "context_length": 512},
            "snowflake/arctic-embed-l": {"embedding_dimension": 1024, "context_length": 512},
        },
        implementation=_M + "nvidia:NvidiaProvider",
        summary="NVIDIA NIM, hosted (key) or self-hosted (no key); embeddings input_type/truncate; rerank",
    ),
    ProviderSpec(
        "remote::oci", "OCIProvider", None, None, None, key_required=False,
        capabilities=Capabilities(completions=False), implementation=_M + "oci:OCIProvider",
        summary="OCI Generative AI (OpenAI-compatible); OCI request signing (oci SDK); compartment header",
    ),
    ProviderSpec(
        "remote::runpod", "RunpodProvider", None, "runpod_api_token", "RUNPOD_API_TOKEN",
        sample={"url": "${env.RUNPOD_URL:=}", "api_token": "${env.RUNPOD_API_TOKEN:=}"},
        summary="a RunPod serverless endpoint (vLLM worker, OpenAI-compatible)",
    ),
    ProviderSpec(
        "remote::sambanova", "SambaNovaProvider", "https://api.sambanova.ai/v1", "sambanova_api_key",
        "SAMBANOVA_API_KEY", capabilities=Capabilities(images="base64"),
        embedding_models={"E5-Mistral-7B-Instruct": {"embedding_dimension": 4096, "context_length": 4096}},
        summary="SambaNova Cloud; images as base64 data URLs only",
    ),
    ProviderSpec(
        "remote::together", "TogetherProvider", "https://api.together.xyz/v1", "together_api_key",
        "TOGETHER_API_KEY", implementation=_M + "together:TogetherProvider",
        embedding_models={
            "togethercomputer/m2-bert-80M-32k-retrieval": {"embedding_dimension": 768, "context_length": 32768},
            "BAAI/bge-large-en-v1.5": {"embedding_dimension": 1024, "context_length": 512},
            "BAAI/bge-base-en-v1.5": {"embedding_dimension": 768, "context_length": 512},
            "Alibaba-NLP/gte-modernbert-base": {"embedding_dimension": 768, "context_length": 8192},
            "intfloat/multilingual-e5-large-instruct": {"embedding_dimension": 1024, "context_length": 512},
        },
        summary="Together AI, every quirk of its API handled",
    ),
    ProviderSpec(
        "remote::vllm", "VLLMProvider", None, "vllm_api_token", "VLLM_API_TOKEN", key_required=False,
        capabilities=Capabilities(rerank=True), implementation=_M + "vllm:VLLMProvider",
        summary="your vLLM server; no key needed; rerank; default max_tokens",
    ),
    ProviderSpec(
        "remote::watsonx", "WatsonxProvider", "https://us-south.ml.cloud.ibm.com", "watsonx_api_key",
        "WATSONX_API_KEY", capabilities=Capabilities(stream_options=False),
        implementation=_M + "watsonx:WatsonxProvider",
        summary="IBM watsonx.ai chat, text generation and embeddings APIs; IAM token exchange (cached)",
    ),
    ProviderSpec(
        "remote::ollama", "OllamaProvider", "http://localhost:11434/v1", None, None, key_required=False,
        implementation=_M + "ollama:OllamaProvider",
        summary="your Ollama server (OpenAI-compatible /v1); native /api/tags and /api/ps",
    ),
    ProviderSpec(
        "remote::openai-compat", "OpenAICompatProvider", None, "api_key", None, key_required=False,
        implementation=_M + "openai_compat:OpenAICompatProvider",
        summary="any OpenAI-compatible service: config.base_url, a key if it needs one",
    ),
    ProviderSpec(
        "inline::llama-cpp", "LlamaCppProvider", implementation=_M + "local:LlamaCppProvider", remote=False,
        config_keys=("preload", "n_ctx", "n_threads", "n_threads_batch", "model_path", "model_id"),
        summary="embedded SmolLM2-135M-Instruct (llama.cpp), offline",
    ),
    ProviderSpec(
        "inline::sentence-transformers", "SentenceTransformersProvider",
        implementation=_M + "local:SentenceTransformersProvider", remote=False,
        config_keys=("preload", "n_threads", "batch_size", "model_path", "model_id"),
        summary="embedded all-MiniLM-L6-v2 (384-d), offline",
    ),
)

CATALOG: dict[str, ProviderSpec] = {row.provider_type: row for row in _ROWS}


def _plain_class(row: ProviderSpec) -> type[OpenAICompatProvider]:
    """A row's own named class on the shared base (``GroqProvider``...): data, no code."""
    cls = type(row.class_name, (OpenAICompatProvider,), {
        "__module__": __name__,
        "__doc__": f"{row.provider_type}: {row.summary} (a catalog row on the shared base).",
        "provider_type": row.provider_type,
    })
    return cls


_PLAIN: dict[str, type[OpenAICompatProvider]] = {
    row.provider_type: _plain_class(row) for row in _ROWS if row.remote and row.implementation is None
}
globals().update({cls.__name__: cls for cls in _PLAIN.values()})


def provider_class(row: ProviderSpec) -> type[Provider]:
    if row.implementation is None:
        return _PLAIN[row.provider_type]
    cls: type[Provider] = _import(row.implementation)
    return cls


def settings_class(row: ProviderSpec) -> type[RemoteSettings] | None:
    """The typed config of a remote row (None for local engines, which list ``config_keys``)."""
    if not row.remote:
        return None
    cls = provider_class(row)
    return cls.Settings if issubclass(cls, OpenAICompatProvider) else None


def build_provider(provider_id: str, provider_type: str, config: dict[str, Any], upstream: Upstream) -> Provider:
    row = CATALOG.get(provider_type)
    if row is None:
        raise ConfigError(
            f"Unknown provider_type '{provider_type}' for provider '{provider_id}'. "
            f"Known: {', '.join(sorted(CATALOG))}. Any OpenAI-compatible service works as "
            "'remote::openai-compat' with config.base_url."
        )
    cls = provider_class(row)
    if not row.remote:
        return cls(provider_id, config)  # type: ignore[call-arg]
    assert issubclass(cls, OpenAICompatProvider)
    return cls(provider_id, config, upstream, row)


def _import(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise ConfigError(f"Provider implementation {spec} cannot be imported: {exc}") from exc
