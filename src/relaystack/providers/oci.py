"""OCI Generative AI (``remote::oci``) through its OpenAI-compatible endpoint.

| quirk                                                                | what relaystack does                          |
|----------------------------------------------------------------------|-----------------------------------------------|
| ``https://inference.generativeai.{region}.oci.oraclecloud.com/       | built from ``oci_region`` (``base_url``       |
| 20231130/actions/v1``                                                | overrides it)                                 |
| no keys: every request is signed (OCI HTTP signatures, RSA-SHA256    | signed by the oci SDK's own signer:           |
| over date, host, target, and the body's length, type and SHA-256)    | ``config_file`` (a user principal: the OCI    |
|                                                                      | config file and profile) or                   |
|                                                                      | ``instance_principal``                        |
| the compartment goes in a ``CompartmentId`` header                   | sent on every call (``oci_compartment_id``,   |
|                                                                      | required)                                     |
| models come from the management API: ``GET https://generativeai.     | listed there (signed); deprecated or retired  |
| {region}.oci.oraclecloud.com/20231130/models?compartmentId=...``     | models and fine-tune bases skipped;           |
| (``{"items": [{"displayName", "capabilities"}]}``)                   | ``TEXT_EMBEDDINGS`` -> embedding (known       |
|                                                                      | dimension), ids are display names             |
| no ``/completions``                                                  | a 400 before any upstream call                |

Config keys: ``oci_auth_type``, ``oci_region``, ``oci_compartment_id``, ``oci_config_file_path``,
``oci_config_profile``, ``base_url``.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from relaystack.errors import ConfigError
from relaystack.providers.auth import Auth
from relaystack.providers.base import ModelEntry
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.settings import RemoteSettings
from relaystack.providers.signing import OCISignerAuth

__all__ = ["OCIProvider", "OCISettings"]

OCI_EMBEDDINGS = {
    "cohere.embed-english-v3.0": {"embedding_dimension": 1024, "context_length": 512},
    "cohere.embed-multilingual-v3.0": {"embedding_dimension": 1024, "context_length": 512},
    "cohere.embed-english-light-v3.0": {"embedding_dimension": 384, "context_length": 512},
    "cohere.embed-multilingual-light-v3.0": {"embedding_dimension": 384, "context_length": 512},
    "cohere.embed-v4.0": {"embedding_dimension": 1536, "context_length": 128000},
}
_API = "/20231130"


class OCISettings(RemoteSettings):
    oci_auth_type: Literal["instance_principal", "config_file"] = "instance_principal"
    oci_region: str = "us-ashburn-1"
    oci_compartment_id: str | None = None
    oci_config_file_path: str = "~/.oci/config"
    oci_config_profile: str = "DEFAULT"

    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        return {
            "oci_auth_type": "${env.OCI_AUTH_TYPE:=instance_principal}",
            "oci_config_file_path": "${env.OCI_CONFIG_FILE_PATH:=~/.oci/config}",
            "oci_config_profile": "${env.OCI_CLI_PROFILE:=DEFAULT}",
            "oci_region": "${env.OCI_REGION:=us-ashburn-1}",
            "oci_compartment_id": "${env.OCI_COMPARTMENT_OCID:=}",
        }


class OCIProvider(OpenAICompatProvider):
    provider_type = "remote::oci"
    Settings = OCISettings
    settings: OCISettings

    def resolve_base_url(self) -> str:
        if not self.settings.oci_compartment_id:
            raise ConfigError(f"{self.label} needs config.oci_compartment_id (OCI_COMPARTMENT_OCID).")
        self.embedding_models = {**OCI_EMBEDDINGS, **self.embedding_models}
        region = self.settings.oci_region
        return self.settings.base_url or f"https://inference.generativeai.{region}.oci.oraclecloud.com{_API}/actions/v1"

    def make_auth(self) -> Auth:
        self._headers["CompartmentId"] = self.settings.oci_compartment_id or ""
        return OCISignerAuth(
            self.label, auth_type=self.settings.oci_auth_type, config_file=self.settings.oci_config_file_path,
            profile=self.settings.oci_config_profile,
        )

    def listing_url(self) -> str:
        parts = urlsplit(self.base_url)
        host = parts.netloc.removeprefix("inference.")
        path = parts.path.split("/actions/")[0]
        query = f"compartmentId={quote(self.settings.oci_compartment_id or '')}&lifecycleState=ACTIVE"
        return urlunsplit((parts.scheme, host, path + "/models", query, ""))

    def models_from_listing(self, listing: Any) -> list[ModelEntry]:
        items = listing.get("items", []) if isinstance(listing, dict) else []
        seen: set[str] = set()
        entries = []
        for model in items:
            if not isinstance(model, dict) or not isinstance(model.get("displayName"), str):
                continue
            name, capabilities = model["displayName"], model.get("capabilities") or []
            if model.get("timeDeprecated") or model.get("timeOnDemandRetired") or "FINE_TUNE" in capabilities:
                continue
            if name in seen:
                continue
            seen.add(name)
            if "TEXT_EMBEDDINGS" in capabilities:
                if name in self.embedding_models:
                    entries.append(self.entry_for(name, "embedding"))
            elif "CHAT" in capabilities or "TEXT_GENERATION" in capabilities:
                entries.append(self.entry_for(name, "llm"))
        return entries
