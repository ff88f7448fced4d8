"""Databricks (``remote::databricks``): model serving endpoints of a workspace.

| quirk                                                              | what relaystack does                          |
|--------------------------------------------------------------------|-----------------------------------------------|
| the OpenAI-compatible API is ``{workspace}/serving-endpoints``     | ``url`` is the workspace; the suffix is added |
|                                                                    | unless present                                |
| a personal access token (``api_token``) as a Bearer token          | the shared base                               |
| no ``/models``: models are the workspace's serving endpoints,      | listed from ``GET {workspace}/api/2.0/        |
| ``{"endpoints": [{"name", "task"}]}``, ``task`` being e.g.         | serving-endpoints``; ``task`` types them;     |
| ``llm/v1/chat`` or ``llm/v1/embeddings``                           | embeddings need a known dimension             |
| no ``/completions``                                                | a 400 before any upstream call                |
| per-request token                                                  | ``databricks_api_token``                      |

Config keys: ``url`` (or ``base_url``), ``api_token`` (or ``api_key``), ``allowed_models``.
"""

from __future__ import annotations

from typing import Any

from relaystack.errors import ConfigError
from relaystack.providers.base import ModelEntry
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.settings import RemoteSettings

__all__ = ["DatabricksProvider"]

_SUFFIX = "/serving-endpoints"


class DatabricksSettings(RemoteSettings):
    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        return {"url": "${env.DATABRICKS_HOST:=}", "api_token": "${env.DATABRICKS_TOKEN:=}"}


class DatabricksProvider(OpenAICompatProvider):
    provider_type = "remote::databricks"
    Settings = DatabricksSettings

    def resolve_base_url(self) -> str:
        url = (self.settings.base_url or "").rstrip("/")
        if not url:
            raise ConfigError(
                f"{self.label} needs config.url: your workspace, e.g. https://dbc-1234.cloud.databricks.com."
            )
        return url if url.endswith(_SUFFIX) else url + _SUFFIX

    def listing_url(self) -> str:
        return self.base_url[: -len(_SUFFIX)] + "/api/2.0/serving-endpoints"

    def models_from_listing(self, listing: Any) -> list[ModelEntry]:
        endpoints = listing.get("endpoints", []) if isinstance(listing, dict) else []
        entries = []
        for endpoint in endpoints:
            if not isinstance(endpoint, dict) or not isinstance(endpoint.get("name"), str):
                continue
            name, task = endpoint["name"], str(endpoint.get("task") or "")
            if task.endswith("embeddings"):
                if name in self.embedding_models:
                    entries.append(self.entry_for(name, "embedding"))
            elif task.endswith(("chat", "completions")) or not task:
                entries.append(self.entry_for(name, "llm"))
        return entries
