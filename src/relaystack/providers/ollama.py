"""Ollama (``remote::ollama``): the shared base, Ollama's native API, and its quirks.

| quirk (llama-stack's adapter, Ollama's docs)                 | what relaystack does                                |
|---------------------------------------------------------------|-----------------------------------------------------|
| no key: Ollama ignores ``Authorization``                      | none needed; a configured ``api_key`` is sent (for  |
|                                                               | an authenticating proxy in front of Ollama)         |
| ``base_url`` ends in ``/v1``; older configs' ``url`` is the   | both work: ``/v1`` is added when missing; the       |
| bare server (``http://localhost:11434``)                      | native API is at the server root                    |
| health is the native ``GET /api/ps``, reported per provider   | ``/v1/providers`` and ``/v1/health`` call it;       |
| by llama-stack's ``/v1/providers``                            | recorded and replayed like every other call         |
| models come from the native ``GET /api/tags``                 | listed as ``<provider_id>/<name>``; a family ending |
|                                                               | in ``bert`` or a name with ``embed`` is an          |
|                                                               | embedding model (dimensions for the known ones)     |
| no tag means ``:latest`` (llama-stack's ``register_model``    | ``ollama/llama3.2`` is listed when only             |
| falls back to ``<id>:latest``)                                | ``llama3.2:latest`` is pulled, and a configured id  |
|                                                               | without a tag is sent as ``<id>:latest`` then       |
| older servers take images as base64 data URLs only            | ``image_url`` links are downloaded through the      |
| (llama-stack: ``download_images = True``)                     | upstream seam (record mode records the download,    |
|                                                               | replay needs no network) and sent as                |
|                                                               | ``data:<type>;base64,...``; a link that cannot be   |
|                                                               | fetched is a 400 naming the part;                   |
|                                                               | ``download_images: false`` passes links on          |
| ``n`` is ignored: one choice comes back                       | ``n > 1`` is a 400 before any upstream call         |
| ``tool_choice: "none"`` is ignored: models call tools anyway  | ``tools`` and ``tool_choice`` are left out of that  |
| (llama-stack's router drops both then)                        | request, as llama-stack sends it                    |
| ``reasoning_effort``: Ollama applies its own default (medium) | chat completions go as the client sent them         |
| to thinking models; llama-stack sets ``"none"`` when unset,   | (v0.7.1's recordings carry no ``reasoning_effort``);|
| on the Responses API's calls only                             | Responses API calls get ``"none"`` when unset       |

A download is a request to a URL the client chose, made from relaystack's network: only http(s),
never with a credential, at most ``max_image_bytes``, and only an image is passed on (a declared
``image/*`` type or an image's magic bytes; nothing of another answer is echoed). Where clients
must not reach internal addresses through the gateway, set ``download_images: false``.

Config keys: ``base_url`` (or ``url``), ``api_key`` (optional), ``allowed_models``,
``refresh_models``, ``download_images`` (default true), ``max_image_bytes`` (default 20 MB).
"""

from __future__ import annotations

import base64
import logging
import mimetypes
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from relaystack.errors import (
    ConfigError,
    InvalidRequestError,
    RelaystackError,
    ReplayMissError,
    UnsupportedParameterError,
)
from relaystack.providers.base import CallContext, ModelEntry, Reply
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.upstream.base import Upstream, UpstreamRequest

__all__ = ["OLLAMA_EMBEDDING_MODELS", "OllamaProvider"]

log = logging.getLogger("relaystack.providers.ollama")

# llama-stack's table for its Ollama adapter
OLLAMA_EMBEDDING_MODELS: dict[str, dict[str, int]] = {
    "all-minilm:l6-v2": {"embedding_dimension": 384, "context_length": 512},
    "nomic-embed-text:latest": {"embedding_dimension": 768, "context_length": 8192},
    "nomic-embed-text:v1.5": {"embedding_dimension": 768, "context_length": 8192},
    "nomic-embed-text:137m-v1.5-fp16": {"embedding_dimension": 768, "context_length": 8192},
}
_OWN_KEYS = ("download_images", "max_image_bytes")
_DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
# the first bytes of the image formats vision models take, for servers that send no content type
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),
)


class OllamaProvider(OpenAICompatProvider):
    provider_type = "remote::ollama"
    embedding_model_metadata: ClassVar[dict[str, dict[str, int]]] = OLLAMA_EMBEDDING_MODELS

    def __init__(self, provider_id: str, config: dict[str, Any], upstream: Upstream, *rest: Any) -> None:
        own = {k: config[k] for k in _OWN_KEYS if k in config}
        super().__init__(provider_id, {k: v for k, v in config.items() if k not in _OWN_KEYS}, upstream, *rest)
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"  # llama-stack's older `url: http://localhost:11434`
        self.native_root = self.base_url[: -len("/v1")]
        self.download_images = _flag(own.get("download_images", True), provider_id, "download_images")
        self.max_image_bytes = _positive_int(
            own.get("max_image_bytes", _DEFAULT_MAX_IMAGE_BYTES), provider_id, "max_image_bytes"
        )
        # model names the server had pulled at the last listing (None: never listed)
        self._pulled: frozenset[str] | None = None

    # -- the native API -----------------------------------------------------------------------
    async def _native(self, path: str) -> tuple[int, bytes]:
        headers = dict(self.settings.extra_headers)
        if self._config_key:  # an authenticating proxy in front of Ollama guards /api too
            headers["Authorization"] = f"Bearer {self._config_key}"
        request = UpstreamRequest("GET", self.native_root + path, headers, timeouts=self._timeouts)
        response = await self.upstream.send(request)
        return response.status, await response.read()

    async def health(self) -> dict[str, Any]:
        """llama-stack's: ``GET /api/ps`` answers (any running-models list will do). Asked by
        ``GET /v1/providers`` only: ``GET /v1/health`` shows the last discovery and request
        outcome, as for every provider, and never calls Ollama."""
        try:
            status, _ = await self._native("/api/ps")
        except RelaystackError as exc:
            hint = "start it with `ollama serve`"
            return {"status": "Error", "message": f"Ollama is not reachable ({exc.message}); {hint}."}
        if status != 200:
            return {"status": "Error", "message": f"Ollama answered GET /api/ps with {status}."}
        return {"status": "OK"}

    async def list_models(self) -> list[ModelEntry] | None:
        try:
            status, raw = await self._native("/api/tags")
        except ReplayMissError:
            log.info("Provider '%s': no recorded /api/tags to replay; models come from the config.", self.provider_id)
            return None
        if status != 200:
            raise self._error_from(status, raw, {}, None)
        try:
            listing = orjson.loads(raw)
        except orjson.JSONDecodeError:
            listing = None
        if not isinstance(listing, dict) or not isinstance(listing.get("models"), list):
            log.warning("Provider '%s': GET /api/tags did not return Ollama's model list.", self.provider_id)
            return None
        models = [m for m in listing["models"] if isinstance(m, dict) and isinstance(_name(m), str)]
        self._pulled = frozenset(str(_name(m)) for m in models)
        return [e for e in self.models_from_tags(models) if self.allows(e.provider_resource_id)]

    def listing_adopted(self, entries: list[ModelEntry]) -> None:
        self._pulled = frozenset(entry.provider_resource_id for entry in entries)

    def models_from_tags(self, models: list[dict[str, Any]]) -> list[ModelEntry]:
        entries: list[ModelEntry] = []
        names = {str(_name(m)) for m in models}
        for model in models:
            name = str(_name(model))
            entry = self._entry(name, model)
            entries.append(entry)
            bare = name.removesuffix(":latest")
            if bare != name and bare not in names:
                # Ollama's own rule: no tag means :latest
                entries.append(ModelEntry(f"{self.provider_id}/{bare}", self.provider_id, name, entry.model_type,
                                          dict(entry.metadata), "listed"))
        return entries

    def _entry(self, name: str, model: dict[str, Any]) -> ModelEntry:
        found = model.get("details")
        details: dict[str, Any] = found if isinstance(found, dict) else {}
        families = [str(f) for f in (details.get("families") or [details.get("family")]) if f]
        known = self.embedding_model_metadata.get(name)
        embedding = known is not None or "embed" in name or any(f.endswith("bert") for f in families)
        identifier = f"{self.provider_id}/{name}"
        if embedding:
            return ModelEntry(identifier, self.provider_id, name, "embedding", dict(known or {}), "listed")
        extra = {"parameter_size": details["parameter_size"]} if details.get("parameter_size") else {}
        return ModelEntry(identifier, self.provider_id, name, "llm", extra, "listed")

    def upstream_name(self, name: str) -> str:
        """``llama3.2`` -> ``llama3.2:latest`` when only that one is pulled (llama-stack's fallback)."""
        pulled = self._pulled
        if pulled is None or ":" in name or name in pulled:
            return name
        latest = f"{name}:latest"
        return latest if latest in pulled else name

    # -- inference -------------------------------------------------------------------------------
    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        n = body.get("n")
        if isinstance(n, int) and n > 1:
            raise UnsupportedParameterError(
                f"Provider '{self.provider_id}' (Ollama) returns one choice per request; send n=1 "
                "(or make n requests).", param="n",
            )
        if self.download_images:
            body = await self._inline_images(body)
        return await super().chat_completion(body, call)

    def prepare_chat(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        prepared = {**body, "model": self.upstream_name(call.upstream_model)}
        if prepared.get("tool_choice") == "none":
            prepared.pop("tool_choice")
            prepared.pop("tools", None)
        if call.api == "responses" and "reasoning_effort" not in body:
            prepared["reasoning_effort"] = "none"  # llama-stack's Responses path: not Ollama's default
        return prepared

    def prepare_completion(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return {**body, "model": self.upstream_name(call.upstream_model)}

    def prepare_embeddings(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return {**body, "model": self.upstream_name(call.upstream_model)}

    # -- images ------------------------------------------------------------------------------------
    async def _inline_images(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body with every linked image replaced by a data URL (a copy: the caller's body,
        which is stored as the client sent it, is left alone)."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not any(_links(m) for m in messages):
            return body
        fetched: dict[str, str] = {}
        new_messages = []
        for i, message in enumerate(messages):
            if not _links(message):
                new_messages.append(message)
                continue
            parts = []
            for j, part in enumerate(message["content"]):
                url = _link_of(part)
                if url is None:
                    parts.append(part)
                    continue
                if url not in fetched:
                    fetched[url] = await self._download(url, f"messages[{i}].content[{j}].image_url.url")
                image = dict(part["image_url"]) if isinstance(part.get("image_url"), dict) else {}
                parts.append({**part, "image_url": {**image, "url": fetched[url]}})
            new_messages.append({**message, "content": parts})
        return {**body, "messages": new_messages}

    async def _download(self, url: str, param: str) -> str:
        shown = _shown(url)
        request = UpstreamRequest("GET", url, {"Accept": "image/*"}, timeouts=self._timeouts)
        try:
            response = await self.upstream.send(request)
        except ReplayMissError:
            raise
        except RelaystackError as exc:
            raise InvalidRequestError(f"Could not download the image at {shown}: {exc.message}", param=param) from None
        try:
            if response.status != 200:
                raise InvalidRequestError(
                    f"Could not download the image at {shown}: the server answered {response.status}.", param=param
                )
            data = bytearray()
            async for chunk in response.iter_chunks():
                data += chunk
                if len(data) > self.max_image_bytes:
                    raise InvalidRequestError(
                        f"The image at {shown} is larger than {self.max_image_bytes} bytes (max_image_bytes).",
                        param=param,
                    )
        finally:
            await response.aclose()
        content_type = _image_type(str(response.headers.get("content-type", "") or ""), bytes(data[:16]), url)
        if content_type is None:
            raise InvalidRequestError(f"The file at {shown} is not an image.", param=param)
        return f"data:{content_type};base64,{base64.b64encode(bytes(data)).decode('ascii')}"


def _name(model: dict[str, Any]) -> Any:
    return model.get("model") or model.get("name")


def _links(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(_link_of(p) is not None for p in content)


def _link_of(part: Any) -> str | None:
    """The http(s) URL of an image part, or None (text, a data URL, anything else)."""
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return url
    return None


def _shown(url: str) -> str:
    # no query string or credentials in messages: signed links carry tokens there
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _image_type(header: str, head: bytes, url: str) -> str | None:
    declared = header.split(";")[0].strip().lower()
    if declared.startswith("image/"):
        return declared
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    if guessed and guessed.startswith("image/") and declared in ("", "application/octet-stream"):
        return guessed
    return None


def _flag(value: Any, provider_id: str, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ConfigError(f"providers.inference[{provider_id}].config.{key} must be true or false, got {value!r}.")


def _positive_int(value: Any, provider_id: str, key: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise ConfigError(f"providers.inference[{provider_id}].config.{key} must be a positive integer, got {value!r}.")
    return number
