"""Amazon Bedrock (``remote::bedrock``) through its OpenAI-compatible endpoint.

| quirk                                                             | what relaystack does                          |
|-------------------------------------------------------------------|-----------------------------------------------|
| ``https://bedrock-mantle.{region}.api.aws/v1`` (older:            | built from ``region_name``; ``base_url``      |
| ``bedrock-runtime.{region}.amazonaws.com/openai/v1``)             | overrides it                                  |
| auth: a Bedrock API key as a Bearer token, or AWS SigV4           | the key when there is one (``api_key``,       |
|                                                                   | ``aws_bearer_token_bedrock``); else SigV4 by  |
|                                                                   | botocore's signer (service ``bedrock-mantle`` |
|                                                                   | or ``bedrock`` from the host), credentials    |
|                                                                   | from config or botocore's default chain       |
| no model listing                                                  | none: ``bedrock/<model id>`` routes to it     |
| no ``/embeddings``, no ``/completions``                           | a 400 before any upstream call                |
| ``stream_options`` refused                                        | dropped from the upstream body                |
| reasoning arrives as ``reasoning`` (llama-stack renames it)       | streamed ``"reasoning":`` becomes             |
|                                                                   | ``"reasoning_content":`` (byte substitution)  |
| an expired Bedrock API key answers 401 "Bearer Token has expired" | the error names the fix (a new key)           |

Config keys: ``api_key``, ``region_name``, ``aws_access_key_id``, ``aws_secret_access_key``,
``aws_session_token``, ``profile_name``, ``base_url``.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import SecretStr

from relaystack.errors import UpstreamError
from relaystack.providers.auth import Auth, HeaderAuth
from relaystack.providers.base import CallContext, ModelEntry
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.settings import RemoteSettings, secret_value
from relaystack.providers.signing import SigV4Auth
from relaystack.providers.sse_relay import RelayRules
from relaystack.upstream.base import UpstreamRequest

__all__ = ["BedrockProvider", "BedrockSettings"]

_REASONING = ((b'"reasoning":', b'"reasoning_content":'), (b'"reasoning": ', b'"reasoning_content": '))


class BedrockSettings(RemoteSettings):
    region_name: str = "us-east-2"
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    profile_name: str | None = None

    secret_keys: ClassVar[tuple[str, ...]] = ("api_key", "aws_secret_access_key", "aws_session_token")

    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        return {"api_key": "${env.AWS_BEARER_TOKEN_BEDROCK:=}", "region_name": "${env.AWS_DEFAULT_REGION:=us-east-2}"}


class _KeyOrSigV4:
    """A call with a key (Bedrock API key) is a Bearer call; one without is SigV4-signed."""

    def __init__(self, sigv4: SigV4Auth) -> None:
        self.bearer = HeaderAuth()
        self.sigv4 = sigv4

    async def apply(self, request: UpstreamRequest, key: str | None) -> None:
        await (self.bearer.apply(request, key) if key else self.sigv4.apply(request, None))

    def secrets(self) -> tuple[str, ...]:
        return self.sigv4.secrets()

    def invalidate(self, key: str | None) -> None:
        pass

    async def aclose(self) -> None:
        pass


class BedrockProvider(OpenAICompatProvider):
    provider_type = "remote::bedrock"
    Settings = BedrockSettings
    settings: BedrockSettings

    def resolve_base_url(self) -> str:
        return self.settings.base_url or f"https://bedrock-mantle.{self.settings.region_name}.api.aws/v1"

    def make_auth(self) -> Auth:
        host = urlsplit(self.base_url).hostname or ""
        service = "bedrock" if host.startswith("bedrock-runtime") else "bedrock-mantle"
        return _KeyOrSigV4(SigV4Auth(
            self.label, service=service, region=self.settings.region_name,
            access_key=self.settings.aws_access_key_id,
            secret_key=secret_value(self.settings.aws_secret_access_key),
            session_token=secret_value(self.settings.aws_session_token),
            profile=self.settings.profile_name,
        ))

    async def list_models(self) -> list[ModelEntry] | None:
        return None  # no listing (llama-stack's rule): any bedrock/<model id> routes here

    def relay_rules(self, body: dict[str, Any], call: CallContext) -> RelayRules:
        return RelayRules(call.requested_model, replacements=_REASONING)

    def fix_response(self, data: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        for choice in data.get("choices") or []:
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict) and "reasoning" in message and "reasoning_content" not in message:
                message["reasoning_content"] = message.pop("reasoning")
        return data

    def _error_from(self, status: int, raw: bytes, headers: Any, call: CallContext | None) -> UpstreamError:
        error = super()._error_from(status, raw, headers, call)
        if status in (401, 403) and "expired" in error.message.lower():
            hint = (" The Bedrock API key has expired: generate a new one (AWS_BEARER_TOKEN_BEDROCK), "
                    "or remove it to sign with AWS credentials (SigV4).")
            return UpstreamError(error.message + hint, status=status, type=error.to_dict()["error"]["type"],
                                 param=error.param, code=error.code, headers=error.headers)
        return error
