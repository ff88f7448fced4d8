"""Azure OpenAI (``remote::azure``) through the v1 API: ``{api_base}/openai/v1``.

| quirk                                                                | what relaystack does                          |
|----------------------------------------------------------------------|-----------------------------------------------|
| the key goes in an ``api-key`` header, not ``Authorization``         | ``api-key: <key>`` (``HeaderAuth``)           |
| the base URL is the resource (``https://NAME.openai.azure.com``)     | ``api_base`` + ``/openai/v1`` (``base_url``   |
| plus ``/openai/v1``                                                  | overrides it whole)                           |
| ``model`` is the *deployment* name                                   | the model's provider_model_id, as given       |
| the v1 API takes no dated ``api-version`` (older llama-stack configs | only ``preview``/``latest`` are sent (as      |
| set one, e.g. ``2024-12-01-preview``)                                | ``?api-version=``); a dated one is ignored    |
|                                                                      | with a start-up warning                       |
| ``GET /models`` lists the resource's models with ``capabilities``    | ``capabilities.embeddings`` types a model     |
|                                                                      | ``embedding``                                 |
| per-request key                                                      | ``azure_api_key``; a per-request ``api_base`` |
|                                                                      | is not honoured (no caller-chosen hosts)      |

Config keys: ``api_key``, ``api_base``, ``api_version``, ``api_type`` (read, unused: always
``azure``), ``base_url``, ``allowed_models``, ``refresh_models``.
"""

from __future__ import annotations

import logging
from typing import Any

from relaystack.errors import ConfigError
from relaystack.providers.auth import Auth, HeaderAuth
from relaystack.providers.base import CallContext, ModelEntry
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.settings import RemoteSettings

__all__ = ["AzureProvider", "AzureSettings"]

log = logging.getLogger("relaystack.providers.azure")

_V1_VERSIONS = frozenset({"preview", "latest", "v1"})


class AzureSettings(RemoteSettings):
    api_base: str | None = None
    api_version: str | None = None
    api_type: str | None = "azure"

    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        return {
            "api_key": "${env.AZURE_API_KEY:=}",
            "api_base": "${env.AZURE_API_BASE:=}",
            "api_version": "${env.AZURE_API_VERSION:=}",
            "api_type": "${env.AZURE_API_TYPE:=}",
        }


class AzureProvider(OpenAICompatProvider):
    provider_type = "remote::azure"
    Settings = AzureSettings
    settings: AzureSettings

    def resolve_base_url(self) -> str:
        if self.settings.base_url:
            return self.settings.base_url
        if not self.settings.api_base:
            raise ConfigError(
                f"{self.label} needs config.api_base: your resource, e.g. https://NAME.openai.azure.com."
            )
        return self.settings.api_base.rstrip("/") + "/openai/v1"

    def make_auth(self) -> Auth:
        return HeaderAuth("api-key", "")

    async def start(self) -> None:
        await super().start()
        version = self.settings.api_version
        if version and version not in _V1_VERSIONS:
            log.warning(
                "%s: api_version %r is ignored: Azure's v1 API (%s) takes no dated version "
                "(only 'preview' or 'latest').", self.label, version, self.base_url,
            )

    def url_for(self, path: str, call: CallContext | None) -> str:
        version = self.settings.api_version
        if version in ("preview", "latest"):
            return f"{self.base_url}{path}?api-version={version}"
        return self.base_url + path

    def models_from_listing(self, listing: Any) -> list[ModelEntry]:
        items = listing.get("data", []) if isinstance(listing, dict) else []
        entries = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            capabilities: dict[str, Any] = item["capabilities"] if isinstance(item.get("capabilities"), dict) else {}
            embedding = capabilities.get("embeddings") is True and not capabilities.get("chat_completion")
            if embedding and item["id"] not in self.embedding_models:
                continue  # an embedding model of unknown dimension cannot be served as one
            entries.append(self.entry_for(item["id"], "embedding" if embedding else None))
        return entries
