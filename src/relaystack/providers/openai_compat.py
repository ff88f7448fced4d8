"""The shared base of every remote provider (llama-stack's "OpenAI mixin", done well).

A plain OpenAI-compatible upstream needs no code: a catalog row (``providers.catalog``)
or a run.yaml entry. This base gives each provider:

- one pooled HTTP client, through the upstream seam (so record/replay sees everything);
- discovery from ``GET /models`` with ``allowed_models`` and a refresh interval, quiet
  when no key is configured; static models from config; per-model embedding metadata;
- the request forwarded with exactly the fields the client set, the caller's model id
  mapped to the upstream's, plus the provider's declared fixes (override ``prepare_*``);
- a per-request key from ``X-LlamaStack-Provider-Data`` under the provider's field, used
  for that request and provider only, never logged, stored or recorded;
- upstream errors mapped to the same status in OpenAI's error shape.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from relaystack.errors import (
    ConfigError,
    MissingApiKeyError,
    UpstreamError,
    UpstreamProtocolError,
)
from relaystack.providers.base import CallContext, JsonReply, ModelEntry, Provider, Reply, StreamReply
from relaystack.providers.embeddings_codec import encode_base64_embeddings
from relaystack.providers.sse_relay import RelayRules, hidden_events, relay_sse
from relaystack.upstream.base import Timeouts, Upstream, UpstreamRequest, UpstreamResponse

__all__ = ["OpenAICompatProvider", "OpenAICompatSettings"]

log = logging.getLogger("relaystack.providers")


class OpenAICompatSettings(BaseModel):
    """The ``config:`` block of a remote provider in run.yaml."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    base_url: str | None = None
    api_key: SecretStr | None = None
    allowed_models: list[str] | None = None
    refresh_models: bool = True
    refresh_interval_s: float = Field(300.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(600.0, gt=0)
    extra_headers: dict[str, str] = Field(default_factory=dict)


class OpenAICompatProvider(Provider):
    provider_type: ClassVar[str] = "remote::openai-compat"
    default_base_url: ClassVar[str | None] = None
    # the key under which X-LlamaStack-Provider-Data carries a per-request API key
    provider_data_api_key_field: ClassVar[str | None] = None
    # the environment variable named in "missing key" errors
    api_key_env: ClassVar[str | None] = None
    # upstream id -> {embedding_dimension, context_length}: listed ids found here are embedding models
    embedding_model_metadata: ClassVar[dict[str, dict[str, int]]] = {}

    def __init__(self, provider_id: str, config: dict[str, Any], upstream: Upstream) -> None:
        super().__init__(provider_id)
        known = set(OpenAICompatSettings.model_fields) | {"url", "api_token"}
        if unknown := sorted(set(config) - known):
            log.warning("Provider '%s': config keys %s are not used by relaystack.", provider_id, unknown)
        if config.get("url") and not config.get("base_url"):
            config = {**config, "base_url": config["url"]}  # llama-stack's older key
        if config.get("api_token") and not config.get("api_key"):
            config = {**config, "api_key": config["api_token"]}
        try:
            self.settings = OpenAICompatSettings.model_validate(config)
        except ValidationError as exc:
            raise ConfigError(f"providers.inference[{provider_id}].config: {exc.errors()[0]['msg']}") from None
        base_url = self.settings.base_url or self.default_base_url
        if not base_url:
            raise ConfigError(f"Provider '{provider_id}' ({self.provider_type}) needs config.base_url.")
        self.base_url = base_url.rstrip("/")
        self.upstream = upstream
        self._timeouts = Timeouts(self.settings.connect_timeout_s, self.settings.read_timeout_s)
        secret = self.settings.api_key.get_secret_value() if self.settings.api_key else ""
        self._config_key = secret or None
        # set by the composition root when replaying recordings: no request leaves the
        # machine, so a missing key must not stop a replayed test suite
        self.credentials_optional = False

    # -- lifecycle, discovery ----------------------------------------------------------------
    async def stop(self) -> None:
        await self.upstream.aclose()

    @property
    def refresh_interval_s(self) -> float | None:
        return self.settings.refresh_interval_s if self.settings.refresh_models else None

    def allows(self, upstream_model: str) -> bool:
        allowed = self.settings.allowed_models
        return allowed is None or upstream_model in allowed

    async def list_models(self) -> list[ModelEntry] | None:
        if self._config_key is None:
            log.debug("Provider '%s' has no configured key: model discovery skipped.", self.provider_id)
            return None
        response = await self._send("GET", "/models", None, None, stream=False)
        raw = await response.read()
        if response.status >= 400:
            raise self._error_from(response.status, raw, response.headers, None)
        try:
            listing = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(f"Provider '{self.provider_id}': GET /models did not return JSON.") from None
        return [e for e in self.models_from_listing(listing) if self.allows(e.provider_resource_id)]

    def models_from_listing(self, listing: Any) -> list[ModelEntry]:
        items = listing.get("data", []) if isinstance(listing, dict) else []
        return [self.entry_for(str(item["id"])) for item in items if isinstance(item, dict) and "id" in item]

    def entry_for(self, upstream_id: str, **extra_metadata: Any) -> ModelEntry:
        identifier = f"{self.provider_id}/{upstream_id}"
        if upstream_id in self.embedding_model_metadata:
            metadata = {**self.embedding_model_metadata[upstream_id], **extra_metadata}
            return ModelEntry(identifier, self.provider_id, upstream_id, "embedding", metadata, "listed")
        return ModelEntry(identifier, self.provider_id, upstream_id, "llm", dict(extra_metadata), "listed")

    # -- inference ------------------------------------------------------------------------------
    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        return await self._generate("/chat/completions", self.prepare_chat(body, call), call)

    async def completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        return await self._generate("/completions", self.prepare_completion(body, call), call)

    async def embeddings(self, body: dict[str, Any], call: CallContext) -> JsonReply:
        wanted_format = body.get("encoding_format")
        upstream_body = self.prepare_embeddings(body, call)
        response = await self._send("POST", "/embeddings", upstream_body, call, stream=False)
        data = await self._read_json(response, call)
        data["model"] = call.requested_model
        data = self.fix_embeddings_response(data, call)
        sent_format = upstream_body.get("encoding_format")
        if wanted_format == "base64" and sent_format != "base64":
            encode_base64_embeddings(data)
        return JsonReply(data)

    # -- hooks a provider overrides for its quirks ---------------------------------------------
    def prepare_chat(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return {**body, "model": call.upstream_model}

    def prepare_completion(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return {**body, "model": call.upstream_model}

    def prepare_embeddings(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return {**body, "model": call.upstream_model}

    def fix_response(self, data: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        return data

    def fix_embeddings_response(self, data: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return data

    def relay_rules(self, body: dict[str, Any], call: CallContext) -> RelayRules:
        return RelayRules(call.requested_model)

    # -- plumbing -------------------------------------------------------------------------------
    async def _generate(self, path: str, upstream_body: dict[str, Any], call: CallContext) -> Reply:
        stream = upstream_body.get("stream") is True
        response = await self._send("POST", path, upstream_body, call, stream=stream)
        if not stream or response.status >= 400:
            data = await self._read_json(response, call)
            data["model"] = call.requested_model
            return JsonReply(self.fix_response(data, upstream_body))
        if "text/event-stream" not in response.headers.get("Content-Type", "text/event-stream"):
            data = await self._read_json(response, call)  # some upstreams answer a stream request with JSON
            data["model"] = call.requested_model
            return JsonReply(self.fix_response(data, upstream_body))
        rules = self.relay_rules(upstream_body, call)
        return StreamReply(relay_sse(response, rules), response.aclose, lambda: hidden_events(rules))

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, call: CallContext | None, *, stream: bool
    ) -> UpstreamResponse:
        headers = {"Authorization": f"Bearer {self._api_key(call)}", **self.settings.extra_headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if stream:
            headers["Accept"] = "text/event-stream"
        timeouts = self._timeouts
        if call is not None and call.connect_timeout_s is not None:
            timeouts = Timeouts(call.connect_timeout_s, timeouts.read)
        request = UpstreamRequest(
            method, self.base_url + path, headers, orjson.dumps(body) if body is not None else None, body,
            stream, timeouts, call.fault if call else None,
        )
        return await self.upstream.send(request)

    def _api_key(self, call: CallContext | None) -> str:
        field = self.provider_data_api_key_field
        if call is not None and field and call.provider_data:
            value = call.provider_data.get(field)
            if isinstance(value, str) and value:
                return value
        if self._config_key:
            return self._config_key
        if self.credentials_optional:
            return "replay-without-a-key"
        where = f" or set {self.api_key_env}" if self.api_key_env else ""
        header = f' or send the header X-LlamaStack-Provider-Data: {{"{field}": "<API_KEY>"}}' if field else ""
        raise MissingApiKeyError(
            f"No API key for provider '{self.provider_id}': set config.api_key in the run config{where}{header}."
        )

    async def _read_json(self, response: UpstreamResponse, call: CallContext) -> dict[str, Any]:
        raw = await response.read()
        if response.status >= 400:
            raise self._error_from(response.status, raw, response.headers, call)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                f"Provider '{self.provider_id}' answered with a body that is not JSON (status {response.status})."
            ) from None
        if not isinstance(data, dict):
            raise UpstreamProtocolError(f"Provider '{self.provider_id}' answered with JSON that is not an object.")
        return data

    def _error_from(
        self, status: int, raw: bytes, headers: Any, call: CallContext | None
    ) -> UpstreamError:
        message, type_, param, code = _parse_error_body(raw)
        # some upstreams echo the key they were given in their error message: never pass it on
        for key in {self._config_key, _provider_data_key(call, self.provider_data_api_key_field)}:
            if key and len(key) >= 8:
                message = message.replace(key, "***")
        passed: dict[str, str] = {}
        for name in ("Retry-After", "retry-after-ms"):
            if value := headers.get(name):
                passed[name] = value
        text = f"Provider '{self.provider_id}' returned {status}: {message}"
        return UpstreamError(text, status=status, type=type_, param=param, code=code, headers=passed)

    def public_config(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "api_key": "********" if self._config_key else None,
            "allowed_models": self.settings.allowed_models,
            "refresh_models": self.settings.refresh_models,
            "provider_data_api_key_field": self.provider_data_api_key_field,
        }


def _provider_data_key(call: CallContext | None, field: str | None) -> str | None:
    if call is None or not field or not call.provider_data:
        return None
    value = call.provider_data.get(field)
    return value if isinstance(value, str) else None


def _parse_error_body(raw: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # never echo a non-JSON body: it may be an HTML error page from an intermediate proxy
        return "the upstream's error body was not JSON", None, None, None
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or "no message"
        code = error.get("code")
        return (
            str(message)[:2000],
            error.get("type") if isinstance(error.get("type"), str) else None,
            error.get("param") if isinstance(error.get("param"), str) else None,
            str(code) if code is not None else None,
        )
    return str(error)[:2000], None, None, None
