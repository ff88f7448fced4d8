"""The shared base of every remote provider (llama-stack's "OpenAI mixin", done well).

A plain OpenAI-compatible upstream needs no code: a catalog row (``providers.catalog``)
or a run.yaml entry. This base gives each provider:

- one pooled HTTP client, through the upstream seam (so record/replay sees everything);
- typed config (``providers.settings``), one line naming the key for a bad value;
- discovery from ``GET /models`` with ``allowed_models`` and a refresh interval; listed ids
  typed from the row's data (known embedding models with their dimensions);
- the request forwarded with exactly the fields the client set, the caller's model id
  mapped to the upstream's, plus the provider's declared fixes (override ``prepare_*``);
- what the provider cannot do (its row's capabilities) refused with a 400 before any call;
- the call's key: per request from ``X-LlamaStack-Provider-Data`` under the provider's
  field, else the configured one, else none (no ``Authorization`` header for a provider
  that needs no key), applied by the provider's pluggable ``Auth`` (``providers.auth``);
- upstream errors mapped to the same status in OpenAI's error shape, with every secret of
  the call (``secrets()``) redacted.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson

from relaystack.errors import (
    ConfigError,
    MissingApiKeyError,
    ReplayMissError,
    UpstreamError,
    UpstreamProtocolError,
)
from relaystack.providers.auth import Auth, bearer
from relaystack.providers.base import CallContext, JsonReply, ModelEntry, ModelType, Provider, Reply, StreamReply
from relaystack.providers.embeddings_codec import encode_base64_embeddings
from relaystack.providers.json_answer import parse_answer, relay_completion, relay_embeddings
from relaystack.providers.rerank import RerankQuery, parse_rerank, ranked
from relaystack.providers.settings import RemoteSettings, parse_settings
from relaystack.providers.spec import Capabilities, Operation, ProviderSpec
from relaystack.providers.sse_relay import RelayRules, SSERelay
from relaystack.redaction import Redactor, is_key_like_name
from relaystack.upstream.base import Timeouts, Upstream, UpstreamRequest, UpstreamResponse

__all__ = ["OpenAICompatProvider", "OpenAICompatSettings"]

log = logging.getLogger("relaystack.providers")

OpenAICompatSettings = RemoteSettings  # the name earlier code imported


class OpenAICompatProvider(Provider):
    provider_type: ClassVar[str] = "remote::openai-compat"
    Settings: ClassVar[type[RemoteSettings]] = RemoteSettings
    # the upstream honours stream_options.include_usage (asked when the gateway wants usage)
    supports_stream_usage: ClassVar[bool] = True
    # the upstream streams usage whether asked or not (Together on the finishing chunk, Gemini on
    # every chunk): shown as OpenAI does (one chunk without choices after the finishing one) to a
    # client that asked, kept out of the stream of one that did not
    streams_usage_unasked: ClassVar[bool] = False

    def __init__(self, provider_id: str, config: dict[str, Any], upstream: Upstream,
                 spec: ProviderSpec | None = None) -> None:
        super().__init__(provider_id)
        self.spec = spec or _spec_of(type(self))
        self.settings = parse_settings(self.Settings, provider_id, dict(config))
        self.label = self.spec.label(provider_id)
        self.upstream = upstream
        self.capabilities: Capabilities = self.spec.capabilities
        self.embedding_models: dict[str, dict[str, int]] = {k: dict(v) for k, v in self.spec.embedding_models.items()}
        self._config_key = self.settings.key()
        # the secrets every call carries: the configured key and key-like extra_headers values
        header_secrets = [v for k, v in self.settings.extra_headers.items()
                          if is_key_like_name(k) or k.lower().endswith("-key")]
        self._config_secrets: tuple[str, ...] = tuple(
            dict.fromkeys(s for s in (self._config_key, *header_secrets) if s))
        self.key_required = self.spec.key_required
        self.base_url = self.resolve_base_url().rstrip("/")
        self._timeouts = Timeouts(self.settings.connect_timeout_s, self.settings.read_timeout_s)
        self._headers = {**self.spec.default_headers, **self.settings.extra_headers}
        self.auth: Auth = self.make_auth()
        # answers a provider does not fix are relayed as the upstream's bytes (providers/json_answer.py)
        self._plain_answers = type(self).fix_response is OpenAICompatProvider.fix_response
        self._plain_embeddings = type(self).fix_embeddings_response is OpenAICompatProvider.fix_embeddings_response
        # set by the composition root when replaying recordings: no request leaves the
        # machine, so no call needs (or sends) a credential
        self.credentials_optional = False

    # -- hooks for a provider's own layout and auth --------------------------------------------
    def resolve_base_url(self) -> str:
        base_url = self.settings.base_url or self.spec.base_url
        if not base_url:
            raise ConfigError(f"{self.label} needs config.base_url (or url): the address of its OpenAI-compatible API.")
        return base_url

    def make_auth(self) -> Auth:
        return bearer()

    def url_for(self, path: str, call: CallContext | None) -> str:
        return self.base_url + path

    def generate_url(self, path: str, stream: bool, call: CallContext) -> str:
        """The URL of a chat or completion call (an API with a separate streaming path overrides it)."""
        return self.url_for(path, call)

    # -- lifecycle, discovery ----------------------------------------------------------------
    async def start(self) -> None:
        if self.key_required and self._config_key is None and not self.credentials_optional:
            log.warning("%s has no API key: %s", self.label, self._missing_key_hint())

    async def stop(self) -> None:
        await self.auth.aclose()
        await self.upstream.aclose()

    @property
    def refresh_interval_s(self) -> float | None:
        return self.settings.refresh_interval_s if self.settings.refresh_models else None

    def allows(self, upstream_model: str) -> bool:
        allowed = self.settings.allowed_models
        return allowed is None or upstream_model in allowed

    def can_list(self) -> bool:
        """Whether discovery can run without a caller's key (listing needs a credential)."""
        return self.credentials_optional or self._config_key is not None or not self.key_required

    async def list_models(self) -> list[ModelEntry] | None:
        if not self.can_list():
            log.debug("%s has no configured key: model discovery skipped.", self.label)
            return None
        try:
            listing = await self.fetch_json("GET", self.listing_url(), None, anonymous=not self.listing_needs_auth)
        except ReplayMissError:
            log.info("%s: no recorded model listing to replay; models come from the config.", self.label)
            return None
        return [e for e in self.models_from_listing(listing) if self.allows(e.provider_resource_id)]

    # False for an API whose model listing is public (watsonx's model specs)
    listing_needs_auth: ClassVar[bool] = True

    def listing_url(self) -> str:
        return self.url_for("/models", None)

    def models_from_listing(self, listing: Any) -> list[ModelEntry]:
        items = listing.get("data", []) if isinstance(listing, dict) else []
        return [self.entry_for(str(item["id"])) for item in items if isinstance(item, dict) and "id" in item]

    def model_type_for(self, upstream_id: str) -> ModelType:
        return "embedding" if upstream_id in self.embedding_models else "llm"

    def entry_for(self, upstream_id: str, model_type: ModelType | None = None, **extra_metadata: Any) -> ModelEntry:
        identifier = f"{self.provider_id}/{upstream_id}"
        kind = model_type or self.model_type_for(upstream_id)
        metadata = {**self.embedding_models.get(upstream_id, {}), **extra_metadata} if kind == "embedding" else {
            **extra_metadata}
        return ModelEntry(identifier, self.provider_id, upstream_id, kind, metadata, "listed")

    # -- inference ------------------------------------------------------------------------------
    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        self.check("chat", body)
        call.client_asked_usage = _usage_asked(body)
        upstream_body = self.prepare_chat(self._strip(body), call)
        return await self._generate("/chat/completions", upstream_body, call, body.get("stream") is True)

    async def completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        self.check("completion", body)
        call.client_asked_usage = _usage_asked(body)
        upstream_body = self.prepare_completion(self._strip(body), call)
        return await self._generate("/completions", upstream_body, call, body.get("stream") is True)

    async def embeddings(self, body: dict[str, Any], call: CallContext) -> JsonReply:
        self.check("embeddings", body)
        wanted_format = body.get("encoding_format")
        upstream_body = self.prepare_embeddings(body, call)
        response = await self._send("POST", self.url_for("/embeddings", call), upstream_body, call, stream=False)
        raw = await self._read_ok(response, call)
        base64_wanted = wanted_format == "base64" and upstream_body.get("encoding_format") != "base64"
        if self._plain_embeddings and not base64_wanted:
            relayed = relay_embeddings(raw, call.requested_model)  # the floats are never parsed
            if relayed is not None:
                return relayed
        data = self.fix_embeddings_response(parse_answer(raw, self.provider_id), call)
        data["model"] = call.requested_model
        if base64_wanted:
            encode_base64_embeddings(data)
        return JsonReply(data)

    async def rerank(self, body: dict[str, Any], call: CallContext) -> JsonReply:
        self.check("rerank", body)
        query = parse_rerank(body)
        url, upstream_body = self.rerank_request(query, call)
        data = await self.fetch_json("POST", url, upstream_body, call)
        return JsonReply({"data": ranked(self.rerank_results(data), query.max_num_results)})

    def check(self, operation: Operation, body: dict[str, Any]) -> None:
        self.capabilities.check(operation, body, self.label)

    def _strip(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.capabilities.stream_options and "stream_options" in body:
            return {k: v for k, v in body.items() if k != "stream_options"}
        return body

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
        """How a stream is relayed; ``body`` is what was sent upstream. Usage the client did not
        ask for (``ask_for_usage`` asked for it, or the upstream sends it unasked) is kept out of
        the client's stream; an upstream that sends it otherwise than OpenAI is reshaped."""
        asked = call.client_asked_usage
        if self.streams_usage_unasked:
            return RelayRules(call.requested_model, strip_usage=not asked, split_usage=asked)
        return RelayRules(call.requested_model, strip_usage=_usage_asked(body) and not asked)

    def ask_for_usage(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        """The upstream body of a stream, with ``stream_options.include_usage`` when the gateway
        wants usage (``call.usage_wanted``) and the client did not ask for it itself."""
        if not call.usage_wanted or call.client_asked_usage or self.streams_usage_unasked \
                or not self.supports_stream_usage or not self.capabilities.stream_options:
            return body
        options = body.get("stream_options")
        return {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}

    def rerank_request(self, query: RerankQuery, call: CallContext) -> tuple[str, dict[str, Any]]:
        """The URL and body of an upstream rerank call (Jina/Cohere style by default)."""
        body: dict[str, Any] = {"model": call.upstream_model, "query": query.query, "documents": query.items}
        if query.max_num_results is not None:
            body["top_n"] = query.max_num_results
        return self.url_for("/rerank", call), body

    def rerank_results(self, data: dict[str, Any]) -> list[tuple[int, float]]:
        results = data.get("results")
        if not isinstance(results, list):
            raise UpstreamProtocolError(f"{self.label}: the rerank answer has no 'results' list.")
        try:
            return [(int(r["index"]), float(r["relevance_score"])) for r in results]
        except (KeyError, TypeError, ValueError):
            raise UpstreamProtocolError(f"{self.label}: a rerank result lacks 'index' or 'relevance_score'.") from None

    # -- plumbing -------------------------------------------------------------------------------
    async def _generate(self, path: str, upstream_body: dict[str, Any], call: CallContext, stream: bool) -> Reply:
        if stream:
            upstream_body = self.ask_for_usage(upstream_body, call)
        response = await self._send("POST", self.generate_url(path, stream, call), upstream_body, call, stream=stream)
        # some upstreams answer a stream request with JSON
        if not stream or response.status >= 400 or \
                "text/event-stream" not in response.headers.get("Content-Type", "text/event-stream"):
            raw = await self._read_ok(response, call)
            if self._plain_answers:  # the answer needs no fix: relayed as its bytes, model id swapped
                return relay_completion(raw, call.requested_model, self.provider_id)
            data = parse_answer(raw, self.provider_id)
            data["model"] = call.requested_model
            return JsonReply(self.fix_response(data, upstream_body))
        rules = self.relay_rules(upstream_body, call)
        # after the send: an exchanged token or a signing key of this call is known by now
        rules.redactor = Redactor(self.secrets(call))
        relay = SSERelay(response, rules)
        return StreamReply(relay.blocks(), response.aclose, relay.hidden_events, lambda: relay.usage,
                           relay.stored_form, relay.forgo_stored, lambda: relay.done)

    async def fetch_json(self, method: str, url: str, body: dict[str, Any] | None,
                         call: CallContext | None = None, *, auth: Auth | None = None, anonymous: bool = False) -> Any:
        """One non-streamed call; the parsed JSON answer (any JSON value) or the upstream's error.
        ``auth`` replaces the provider's scheme for this call (an endpoint that authenticates otherwise);
        ``anonymous`` sends no credentials at all (an endpoint that needs none)."""
        response = await self._send(method, url, body, call, stream=False, auth=auth, anonymous=anonymous)
        raw = await response.read()
        if response.status >= 300:
            raise self._error_from(response.status, raw, response.headers, call)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(
                f"{self.label} answered {method} {url.split('?')[0].rsplit('/', 1)[-1]} with a body that is not JSON."
            ) from None

    async def _send(
        self, method: str, url: str, body: dict[str, Any] | None, call: CallContext | None, *, stream: bool,
        auth: Auth | None = None, anonymous: bool = False,
    ) -> UpstreamResponse:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if stream:
            headers["Accept"] = "text/event-stream"
        timeouts = self._timeouts
        if call is not None and call.connect_timeout_s is not None:
            timeouts = Timeouts(call.connect_timeout_s, timeouts.read)
        request = UpstreamRequest(
            method, url, headers, orjson.dumps(body) if body is not None else None, body,
            stream, timeouts, call.fault if call else None, self.settings.tls_verify,
        )
        if not (self.credentials_optional or anonymous):
            key = self._key(call)
            if key is None and self.key_required:
                raise MissingApiKeyError(f"No API key for {self.label}: {self._missing_key_hint()}")
            await (auth or self.auth).apply(request, key)
            request.secrets = self.secrets(call)
        return await self.upstream.send(request)

    def _key(self, call: CallContext | None) -> str | None:
        """The call's key: the per-request one under the provider's field, else the configured one."""
        value = _provider_data_key(call, self.spec.key_field)
        return value or self._config_key

    def _missing_key_hint(self) -> str:
        field, env = self.spec.key_field, self.spec.key_env
        where = f" or set {env}" if env else ""
        header = f' or send the header X-LlamaStack-Provider-Data: {{"{field}": "<API_KEY>"}}' if field else ""
        return f"set config.api_key in the run config{where}{header}."

    def secrets(self, call: CallContext | None = None) -> tuple[str, ...]:
        """The configured key, key-like ``extra_headers`` values, the call's own key from
        ``X-LlamaStack-Provider-Data`` and whatever the auth scheme derived (exchanged tokens,
        signing keys: ``Auth.secrets()``)."""
        per_call = _provider_data_key(call, self.spec.key_field)
        derived = self.auth.secrets()
        if per_call is None and not derived:
            return self._config_secrets  # the common case, on the hot path: nothing to build
        found = [*self._config_secrets, per_call, *derived]
        return tuple(dict.fromkeys(s for s in found if s))

    async def _read_ok(self, response: UpstreamResponse, call: CallContext) -> bytes:
        """The whole body of a successful answer; the upstream's error (redacted) otherwise."""
        raw = await response.read()
        if response.status >= 300:
            raise self._error_from(response.status, raw, response.headers, call)
        return raw

    def _error_from(
        self, status: int, raw: bytes, headers: Any, call: CallContext | None
    ) -> UpstreamError:
        # some upstreams echo the credentials they were given (in any field): never pass them on.
        # Taken before a 401 drops an exchanged token, which the error may still echo.
        redactor = Redactor(self.secrets(call))
        if status < 400:  # the live client follows no redirect: no model API sends its calls elsewhere
            where = _origin(str(headers.get("Location") or "")) or "another address"
            return redactor.error(UpstreamError(
                f"Provider '{self.provider_id}' answered {status}, a redirect to {where}; relaystack does not "
                "follow redirects: set the provider's base_url to the address it points to.",
                status=502, code="upstream_redirect"))
        if status == 401:
            self.auth.invalidate(self._key(call))  # an exchanged token is refused: exchange again next time
        message, type_, param, code = _parse_error_body(raw)
        passed: dict[str, str] = {}
        for name in ("Retry-After", "retry-after-ms"):
            if value := headers.get(name):
                passed[name] = value
        text = f"Provider '{self.provider_id}' returned {status}: {message}"
        error = UpstreamError(text, status=status, type=type_, param=param, code=code, headers=passed)
        return redactor.error(error)

    def public_config(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"base_url": self.base_url}
        for name, value in self.settings.model_dump(exclude={"base_url"}).items():
            if name in self.settings.secret_keys:
                value = "********" if value else None
            shown[name] = value
        shown["provider_data_api_key_field"] = self.spec.key_field
        return shown


def _spec_of(cls: type[OpenAICompatProvider]) -> ProviderSpec:
    from relaystack.providers.catalog import CATALOG

    return CATALOG[cls.provider_type]


def _origin(url: str) -> str:
    """scheme://host of a URL (its path and query may hold a secret); empty if it is not absolute."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0].rpartition('@')[2]}" if sep else ""


def _usage_asked(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _provider_data_key(call: CallContext | None, field: str | None) -> str | None:
    if call is None or not field or not call.provider_data:
        return None
    value = call.provider_data.get(field)
    return value if isinstance(value, str) and value else None


def _parse_error_body(raw: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # never echo a non-JSON body: it may be an HTML error page from an intermediate proxy
        return "the upstream's error body was not JSON", None, None, None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # some APIs (Gemini's) wrap the error object in a list
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        message = (error.get("message") or error.get("detail") or error.get("errorMessage")
                   or _first_error(error) or "no message")
        code = error.get("code")
        return (
            str(message)[:2000],
            error.get("type") if isinstance(error.get("type"), str) else None,
            error.get("param") if isinstance(error.get("param"), str) else None,
            str(code) if code is not None else None,
        )
    return str(error)[:2000], None, None, None


def _first_error(error: dict[str, Any]) -> str | None:
    """watsonx-style ``{"errors": [{"code", "message"}]}``."""
    errors = error.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message") or errors[0].get("code") or "") or None
    return None
