"""Google Gemini (``remote::gemini``) and Vertex AI (``remote::vertexai``), both through
Google's OpenAI-compatible endpoints.

| quirk                                                                | what relaystack does                          |
|----------------------------------------------------------------------|-----------------------------------------------|
| Gemini: ``.../v1beta/openai``, the API key as a Bearer token         | the shared base                               |
| Gemini: OAuth instead of a key (``access_token``, or ADC when only   | Bearer token + ``x-goog-user-project:         |
| ``project`` is set)                                                  | <project>``; ADC tokens cached and refreshed  |
| Gemini: listed ids are ``models/<name>``                             | kept (requests accept them)                   |
| Gemini: embeddings answer without ``usage``                          | filled with 0s (llama-stack's fix)            |
| Gemini: usage on every streamed chunk                                | OpenAI's shape: shown once, after the         |
|                                                                      | finishing chunk, only when asked for          |
| Gemini: errors come as a list ``[{"error": {...}}]``                 | read by the shared error parser               |
| Gemini: no ``/completions``; images as base64 data URLs only         | a 400 before any upstream call                |
| Vertex: ``https://{location}-aiplatform.googleapis.com/v1/projects/  | built from ``project`` and ``location``       |
| {project}/locations/{location}/endpoints/openapi`` (``global``: no   | (``base_url`` overrides it)                   |
| region prefix)                                                       |                                               |
| Vertex: OAuth only (ADC, or ``access_token``)                        | ADC tokens cached and refreshed; a caller's   |
|                                                                      | ``vertex_access_token`` used as it is         |
| Vertex: model ids carry their publisher (``google/gemini-2.0-flash``)| ``google/`` added to a bare id                |
| Vertex: no OpenAI model listing                                      | none: ``vertexai/<model>`` routes to it       |

Gemini config keys: ``api_key``, ``access_token``, ``project``, ``base_url``. Vertex:
``project``, ``location``, ``access_token``, ``base_url``. Per-request fields:
``gemini_api_key``; ``vertex_access_token``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SecretStr, model_validator

from relaystack.errors import ConfigError
from relaystack.providers.auth import Auth
from relaystack.providers.base import CallContext, ModelEntry
from relaystack.providers.google_auth import AdcTokens, GoogleAuth
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.settings import RemoteSettings, secret_value
from relaystack.providers.sse_relay import RelayRules
from relaystack.providers.stream_usage import usage_rules

__all__ = ["GeminiProvider", "GeminiSettings", "VertexAIProvider", "VertexAISettings"]


class GeminiSettings(RemoteSettings):
    access_token: SecretStr | None = None
    project: str | None = None

    secret_keys: ClassVar[tuple[str, ...]] = ("api_key", "access_token")

    @model_validator(mode="after")
    def _one_credential(self) -> GeminiSettings:
        if self.key() and secret_value(self.access_token):
            raise ValueError("api_key and access_token are mutually exclusive: set one or the other")
        return self

    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        return {
            "api_key": "${env.GEMINI_API_KEY:=}",
            "access_token": "${env.GEMINI_ACCESS_TOKEN:=}",
            "project": "${env.GEMINI_AI_PROJECT:=}",
        }


class GeminiProvider(OpenAICompatProvider):
    provider_type = "remote::gemini"
    Settings = GeminiSettings
    settings: GeminiSettings

    def make_auth(self) -> Auth:
        token = secret_value(self.settings.access_token)
        use_adc = token is None and self._config_key is None and bool(self.settings.project)
        if token or use_adc:
            self.key_required = False  # OAuth stands in for the key
        return GoogleAuth(
            access_token=token,
            quota_project=self.settings.project,
            adc=AdcTokens(self.label) if use_adc else None,
        )

    def can_list(self) -> bool:
        return super().can_list() or not self.key_required

    def fix_embeddings_response(self, data: dict[str, Any], call: CallContext) -> dict[str, Any]:
        if not data.get("usage"):
            data["usage"] = {"prompt_tokens": 0, "total_tokens": 0}
        return data

    def relay_rules(self, body: dict[str, Any], call: CallContext) -> RelayRules:
        return usage_rules(RelayRules(call.requested_model), body)


class VertexAISettings(RemoteSettings):
    project: str | None = None
    location: str = "global"
    access_token: SecretStr | None = None

    secret_keys: ClassVar[tuple[str, ...]] = ("api_key", "access_token")

    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        return {"project": "${env.VERTEX_AI_PROJECT:=}", "location": "${env.VERTEX_AI_LOCATION:=global}"}


class VertexAIProvider(OpenAICompatProvider):
    provider_type = "remote::vertexai"
    Settings = VertexAISettings
    settings: VertexAISettings

    def resolve_base_url(self) -> str:
        if self.settings.base_url:
            return self.settings.base_url
        project, location = self.settings.project, self.settings.location
        if not project:
            raise ConfigError(f"{self.label} needs config.project: the Google Cloud project of your Vertex AI.")
        host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
        return f"https://{host}/v1/projects/{project}/locations/{location}/endpoints/openapi"

    def make_auth(self) -> Auth:
        token = secret_value(self.settings.access_token)
        return GoogleAuth(access_token=token, quota_project=None, adc=None if token else AdcTokens(self.label))

    async def list_models(self) -> list[ModelEntry] | None:
        return None  # the OpenAI-compatible endpoint lists nothing: any vertexai/<model> routes here

    def prepare_chat(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        model = call.upstream_model
        return {**body, "model": model if "/" in model else f"google/{model}"}
