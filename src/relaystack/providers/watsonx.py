"""IBM watsonx.ai (``remote::watsonx``): its chat, generation and embeddings APIs as OpenAI's.

| quirk                                                                | what relaystack does                          |
|----------------------------------------------------------------------|-----------------------------------------------|
| an IBM Cloud API key is not a bearer token: it is exchanged at IAM   | exchanged (``TokenCache``): one per key,      |
| (``POST iam.cloud.ibm.com/identity/token``) for a ~1 h access token  | reused until a minute before expiry,          |
|                                                                      | dropped after a 401; redacted like keys       |
| chat is ``POST /ml/v1/text/chat`` (``/text/chat_stream`` streamed),  | ``model`` -> ``model_id``; ``stream`` picks   |
| every call with a ``version`` query parameter                        | the path; ``?version=`` (``api_version``)     |
| ``project_id`` in every body                                         | from config, or ``watsonx_project_id`` in the |
|                                                                      | provider data; a 400 when neither is set      |
| ``parallel_tool_calls`` and ``stream_options`` are refused           | dropped from the upstream body                |
| a string ``tool_choice`` is ``tool_choice_option``                   | renamed                                       |
| embeddings: ``POST /ml/v1/text/embeddings`` with ``inputs``,         | translated both ways (``usage`` from          |
| answering ``{"results": [{"embedding"}], "input_token_count"}``      | ``input_token_count``)                        |
| models: ``GET /ml/v1/foundation_model_specs`` (no auth), each with   | ``text_chat`` -> llm; ``embedding`` ->        |
| ``functions`` and ``model_limits``                                   | embedding, with ``embedding_dimension``       |
| errors: ``{"errors": [{"code", "message"}]}``                        | read by the shared error parser               |
| completions: the text generation API (``/ml/v1/text/generation``,    | translated both ways (``watsonx_text``):      |
| ``_stream``): ``input``, ``parameters.max_new_tokens``..., answering | max_tokens -> max_new_tokens, stop ->         |
| ``results[0].generated_text`` and a ``stop_reason``                  | stop_sequences, stop_reason ->                |
|                                                                      | finish_reason; one text prompt a call         |

Config keys: ``url`` (``base_url``), ``api_key``, ``project_id``, ``timeout``, ``api_version``,
``iam_url``. Per-request fields: ``watsonx_api_key``, ``watsonx_project_id``.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any
from urllib.parse import urlencode

import orjson

from relaystack.errors import InvalidRequestError, UpstreamConnectionError, UpstreamError
from relaystack.providers.auth import Auth, TokenCache, TokenExchangeAuth
from relaystack.providers.base import CallContext, ModelEntry
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.settings import RemoteSettings
from relaystack.providers.sse_relay import RelayRules
from relaystack.providers.watsonx_text import completion_chunks, completion_from, generation_body
from relaystack.redaction import Redactor
from relaystack.upstream.base import Timeouts, Upstream, UpstreamRequest
from relaystack.upstream.http_client import HttpUpstream

__all__ = ["WatsonxProvider", "WatsonxSettings"]

IAM_URL = "https://iam.cloud.ibm.com/identity/token"
_IAM_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
_SPECS_VERSION = "2023-10-25"
_DROPPED = frozenset({"model", "stream", "stream_options", "parallel_tool_calls"})


class WatsonxSettings(RemoteSettings):
    project_id: str | None = None
    api_version: str = "2024-03-13"
    iam_url: str = IAM_URL

    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        return {
            "url": "${env.WATSONX_BASE_URL:=https://us-south.ml.cloud.ibm.com}",
            "api_key": "${env.WATSONX_API_KEY:=}",
            "project_id": "${env.WATSONX_PROJECT_ID:=}",
        }


class WatsonxProvider(OpenAICompatProvider):
    provider_type = "remote::watsonx"
    Settings = WatsonxSettings
    settings: WatsonxSettings
    # the IAM exchange goes straight to IBM: never recorded (it would hold tokens), skipped on replay
    token_upstream: Upstream | None = None

    def make_auth(self) -> Auth:
        self.tokens = TokenCache(self._exchange)
        return TokenExchangeAuth(self.tokens)

    async def _exchange(self, api_key: str) -> tuple[str, float]:
        upstream = self.token_upstream or HttpUpstream(limit=4)
        self.token_upstream = upstream
        body = urlencode({"grant_type": _IAM_GRANT, "apikey": api_key}).encode()
        request = UpstreamRequest(
            "POST", self.settings.iam_url,
            {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            body, None, False, Timeouts(self.settings.connect_timeout_s, 30.0), None, self.settings.tls_verify,
            (api_key,),
        )
        response = await upstream.send(request)
        raw = await response.read()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if response.status >= 400 or not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            reason = data.get("errorMessage") if isinstance(data, dict) else None
            message = f"IBM IAM refused the watsonx API key ({response.status}: {reason or 'no reason given'})."
            raise UpstreamError(f"{self.label}: {Redactor([api_key]).text(message)} Check config.api_key "
                                "or watsonx_api_key.", status=401, type="authentication_error",
                                code="credentials_refused")
        lifetime = data.get("expires_in")
        return data["access_token"], float(lifetime) if isinstance(lifetime, int | float) else 3600.0

    async def stop(self) -> None:
        if self.token_upstream is not None:
            await self.token_upstream.aclose()
        await super().stop()

    def _url(self, path: str) -> str:
        return f"{self.base_url}/ml/v1{path}?version={self.settings.api_version}"

    def url_for(self, path: str, call: CallContext | None) -> str:
        return self._url({"/chat/completions": "/text/chat", "/embeddings": "/text/embeddings"}.get(path, path))

    # -- discovery: public -----------------------------------------------------------------
    listing_needs_auth = False

    def can_list(self) -> bool:
        return True

    def listing_url(self) -> str:
        return f"{self.base_url}/ml/v1/foundation_model_specs?version={_SPECS_VERSION}&limit=200"

    def models_from_listing(self, listing: Any) -> list[ModelEntry]:
        resources = listing.get("resources", []) if isinstance(listing, dict) else []
        entries = []
        for spec in resources:
            if not isinstance(spec, dict) or not isinstance(spec.get("model_id"), str):
                continue
            functions = {f.get("id") for f in spec.get("functions") or [] if isinstance(f, dict)}
            limits: dict[str, Any] = spec["model_limits"] if isinstance(spec.get("model_limits"), dict) else {}
            if "embedding" in functions and isinstance(limits.get("embedding_dimension"), int):
                self.embedding_models[spec["model_id"]] = {
                    "embedding_dimension": limits["embedding_dimension"],
                    "context_length": int(limits.get("max_sequence_length") or 0),
                }
                entries.append(self.entry_for(spec["model_id"], "embedding"))
            elif "text_chat" in functions:
                entries.append(self.entry_for(spec["model_id"], "llm"))
        return entries

    # -- chat -------------------------------------------------------------------------------
    def prepare_chat(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        prepared = {k: v for k, v in body.items() if k not in _DROPPED}
        choice = prepared.pop("tool_choice", None)
        if isinstance(choice, str):
            prepared["tool_choice_option"] = choice
        elif choice is not None:
            prepared["tool_choice"] = choice
        prepared.update(model_id=call.upstream_model, project_id=self._project(call))
        return prepared

    def generate_url(self, path: str, stream: bool, call: CallContext) -> str:
        if path == "/completions":
            return self._url("/text/generation_stream" if stream else "/text/generation")
        return self._url("/text/chat_stream" if stream else "/text/chat")

    def fix_response(self, data: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        if "input" in body:  # a text generation
            return completion_from(data, str(data.get("model")))
        data.setdefault("object", "chat.completion")
        return data

    # -- completions: the text generation API ------------------------------------------------
    def prepare_completion(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return generation_body(body, call.upstream_model, self._project(call))

    def relay_rules(self, body: dict[str, Any], call: CallContext) -> RelayRules:
        if "input" not in body:
            return RelayRules(call.requested_model)
        # every event is a generation result: translated to a completion chunk, then checked
        return RelayRules(call.requested_model,
                          translate=partial(completion_chunks, model=call.requested_model, created=int(time.time())))

    def _project(self, call: CallContext) -> str:
        given = call.provider_data.get("watsonx_project_id") if call.provider_data else None
        project = given if isinstance(given, str) and given else self.settings.project_id
        if not project:
            raise InvalidRequestError(
                f"{self.label} needs a project: set config.project_id (WATSONX_PROJECT_ID) or send "
                'X-LlamaStack-Provider-Data: {"watsonx_project_id": "..."}.', param="project_id",
            )
        return project

    # -- embeddings -------------------------------------------------------------------------
    def prepare_embeddings(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        given = body.get("input")
        inputs = [given] if isinstance(given, str) else given
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise InvalidRequestError("watsonx embeds text only: 'input' must be a string or a list of strings.",
                                      param="input")
        prepared: dict[str, Any] = {"inputs": inputs, "model_id": call.upstream_model,
                                    "project_id": self._project(call)}
        if isinstance(body.get("dimensions"), int):
            raise InvalidRequestError("watsonx embeddings do not take 'dimensions'; remove it.", param="dimensions")
        return prepared

    def fix_embeddings_response(self, data: dict[str, Any], call: CallContext) -> dict[str, Any]:
        results = data.get("results")
        if not isinstance(results, list):
            raise UpstreamConnectionError(f"{self.label}: the embeddings answer has no 'results' list.")
        tokens = data.get("input_token_count")
        count = tokens if isinstance(tokens, int) else -1
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": r.get("embedding")}
                     for i, r in enumerate(results) if isinstance(r, dict)],
            "model": call.requested_model,
            "usage": {"prompt_tokens": count, "total_tokens": count},
        }
