"""Model id -> (provider, upstream id): the registry every request goes through.

Models come from four places: the run config, the providers' static lists (local models),
discovery from each upstream's ``/models`` (refreshed periodically), and ``POST /v1/models``
(persisted in the store so every worker process sees them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from relaystack.config import ModelConfig
from relaystack.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    ModelTypeError,
    NotFoundError,
    RelaystackError,
    ServiceUnavailableError,
)
from relaystack.health import HealthBook
from relaystack.providers.base import CallContext, ModelEntry, ModelType, Provider
from relaystack.routing_config import DeploymentConfig
from relaystack.shared_discovery import SharedDiscovery
from relaystack.storage.base import Store

__all__ = ["Deployment", "Registry"]

log = logging.getLogger("relaystack.registry")

_SYNC_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a model with ``deployments:`` is served: the entry a provider is called with, plus
    what the router picks and times it by."""

    name: str
    entry: ModelEntry  # identifier: the model's id; provider_id / provider_resource_id: this deployment's
    config: DeploymentConfig


class Registry:
    def __init__(
        self, providers: Iterable[Provider], store: Store | None = None, health: HealthBook | None = None
    ) -> None:
        self.providers: dict[str, Provider] = {p.provider_id: p for p in providers}
        self._store = store
        # each provider's last discovery outcome goes here (GET /v1/health)
        self.health = health if health is not None else HealthBook()
        self._config: dict[str, ModelEntry] = {}
        self._static: dict[str, ModelEntry] = {}
        self._listed: dict[str, dict[str, ModelEntry]] = {}
        self._registered: dict[str, ModelEntry] = {}
        self._models: dict[str, ModelEntry] = {}
        # model id -> its deployments (models declared with `deployments:` in the run config)
        self._deployments: dict[str, tuple[Deployment, ...]] = {}
        self._store_version = -1
        self._next_sync = 0.0
        self._refresh_tasks: list[asyncio.Task[None]] = []
        self._pending_sync: asyncio.Task[ServiceUnavailableError | None] | None = None
        # set while the store cannot be read: the registered models known before are served meanwhile
        self._store_outage: ServiceUnavailableError | None = None

    # -- building ------------------------------------------------------------------------
    def add_config_models(self, models: Iterable[ModelConfig]) -> None:
        for cfg in models:
            if cfg.deployments is not None:
                self._add_deployments(cfg)
                continue
            provider_id = cfg.provider_id or next(iter(self.providers), None)
            if provider_id not in self.providers:
                continue  # disabled provider: already warned about by the config loader
            resource = cfg.provider_model_id or _strip_prefix(cfg.model_id or "", provider_id)
            identifier = cfg.model_id or f"{provider_id}/{resource}"
            self._config[identifier] = ModelEntry(
                identifier, provider_id, resource, cfg.model_type, dict(cfg.metadata), "config"
            )
        self._rebuild()

    def _add_deployments(self, cfg: ModelConfig) -> None:
        identifier = cfg.model_id or ""
        deployments = []
        for dep in cfg.deployments or ():
            if dep.provider_id not in self.providers:
                continue  # disabled provider: already warned about by the config loader
            resource = dep.provider_model_id or _strip_prefix(identifier, dep.provider_id)
            entry = ModelEntry(identifier, dep.provider_id, resource, cfg.model_type, dict(cfg.metadata), "config")
            deployments.append(Deployment(dep.display_name, entry, dep))
        if not deployments:
            log.warning("Model '%s': none of its deployments has a configured provider; not served.", identifier)
            return
        self._deployments[identifier] = tuple(deployments)
        # listed as its first deployment (GET /v1/models shows one entry per model id)
        self._config[identifier] = deployments[0].entry

    def deployments(self, model: str) -> tuple[Deployment, ...] | None:
        """The deployments of a model declared with ``deployments:``; None for any other model."""
        return self._deployments.get(model)

    def deployment_table(self) -> dict[str, tuple[Deployment, ...]]:
        return dict(self._deployments)

    async def start(self, shared: SharedDiscovery | None = None) -> None:
        """Load the models; with ``shared`` (``--workers N``), the worker processes list each
        provider's models once between them (``shared_discovery.py``)."""
        for provider in self.providers.values():
            for entry in provider.static_models():
                self._static[entry.identifier] = entry
        await self._sync_registered(force=True)
        if shared is None:
            await self._refresh_all()
        else:
            async with shared.held():
                listed = shared.read(self.health)
                if listed is None:
                    await self._refresh_all()
                    shared.write(list(self.providers), self._listed, self.health)
                else:
                    self._adopt(listed)
        for provider in self.providers.values():
            if provider.refresh_interval_s:
                self._refresh_tasks.append(asyncio.create_task(self._refresh_loop(provider)))

    def _adopt(self, listed: dict[str, dict[str, ModelEntry]]) -> None:
        for provider_id, entries in listed.items():
            provider = self.providers.get(provider_id)
            if provider is not None:
                self._listed[provider_id] = entries
                provider.listing_adopted(list(entries.values()))
        self._rebuild()

    async def _refresh_all(self) -> None:
        await asyncio.gather(*(self.refresh(p) for p in self.providers.values()))

    async def stop(self) -> None:
        for task in self._refresh_tasks:
            task.cancel()
        for task in self._refresh_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._refresh_tasks.clear()

    async def refresh(self, provider: Provider) -> None:
        """Ask one provider for its models. Never raises: start-up must survive a down upstream."""
        health = self.health[provider.provider_id]
        try:
            listed = await provider.list_models()
        except RelaystackError as exc:
            health.discovery_failed(exc)
            log.warning("Model discovery for provider '%s' failed: %s", provider.provider_id, exc.message)
            return
        except Exception as exc:  # a provider bug must not take the server down
            health.discovery_failed(exc)
            log.warning("Model discovery for provider '%s' failed: %s", provider.provider_id, type(exc).__name__)
            return
        if listed is None:
            return
        health.discovered(len(listed))
        self._listed[provider.provider_id] = {e.identifier: e for e in listed}
        log.debug("Provider '%s' lists %d models.", provider.provider_id, len(listed))
        self._rebuild()

    async def _refresh_loop(self, provider: Provider) -> None:
        interval = provider.refresh_interval_s or 300.0
        while True:
            await asyncio.sleep(interval)
            await self.refresh(provider)

    def _rebuild(self) -> None:
        merged: dict[str, ModelEntry] = {}
        for listed in self._listed.values():
            merged.update(listed)
        merged.update(self._static)
        merged.update(self._config)
        merged.update(self._registered)
        self._models = merged

    # -- lookups ----------------------------------------------------------------------------
    def models(self) -> list[ModelEntry]:
        self._maybe_sync()
        return sorted(self._models.values(), key=lambda e: e.identifier)

    async def models_fresh(self) -> list[ModelEntry]:
        """``models()`` after re-reading what other workers registered (admin routes: not hot).

        While the store is unreachable: the models known so far, not a 503 (the config's and the
        providers' models do not depend on the store, and the registered ones rarely change)."""
        await self._sync_registered(tolerate_outage=True)
        return self.models()

    async def get_fresh(self, identifier: str) -> ModelEntry:
        """``get()`` after re-reading; while the store is unreachable a model known so far is
        served, and an unknown one is the store's 503 (it may be registered on another instance)."""
        outage = await self._sync_registered(tolerate_outage=True)
        try:
            return self.get(identifier)
        except ModelNotFoundError:
            if outage is not None:
                raise outage from None
            raise

    def get(self, identifier: str) -> ModelEntry:
        self._maybe_sync()
        entry = self._models.get(identifier)
        if entry is None:
            raise ModelNotFoundError.for_model(identifier, self._models)
        return entry

    def resolve(self, model: str, kind: ModelType) -> tuple[Provider, CallContext]:
        """The provider and call context for a request's ``model`` field."""
        self._maybe_sync()
        entry = self._models.get(model) or self._fallback(model, kind)
        provider = self.providers.get(entry.provider_id)
        if provider is None:
            raise ModelNotFoundError(
                f"Model '{model}' belongs to provider '{entry.provider_id}', which is not configured."
            )
        if entry.model_type != kind and entry.source != "routed":
            used_for = {"llm": "chat and completions", "embedding": "embeddings", "rerank": "rerank"}[kind]
            raise ModelTypeError(
                f"Model '{model}' is an {entry.model_type} model and cannot be used for {used_for}.", param="model"
            )
        if not provider.allows(entry.provider_resource_id):
            raise InvalidRequestError(
                f"Model '{model}' is not in provider '{provider.provider_id}' allowed_models.",
                param="model", code="model_not_allowed",
            )
        return provider, CallContext(model=entry, requested_model=model)

    async def resolve_fresh(self, model: str, kind: ModelType) -> tuple[Provider, CallContext]:
        """``resolve``, but a miss first re-reads the models other workers registered."""
        try:
            return self.resolve(model, kind)
        except ModelNotFoundError:
            if self._store is None:
                raise
        await self._sync_registered(force=True)
        return self.resolve(model, kind)

    def _fallback(self, model: str, kind: ModelType) -> ModelEntry:
        # `provider_id/anything` routes to that provider even unregistered when the provider
        # could not be listed (per-request keys make listing impossible); when its listing is
        # known, a name missing from it is a typo and gets a 404 naming close matches.
        # Then a unique upstream id match, like llama-stack did.
        provider_id, _, rest = model.partition("/")
        if rest and provider_id in self.providers and provider_id not in self._listed:
            return ModelEntry(model, provider_id, rest, kind, {}, "routed")
        matches = [e for e in self._models.values() if e.provider_resource_id == model]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidRequestError(
                f"Model '{model}' is served by several providers: use one of "
                f"{', '.join(sorted(m.identifier for m in matches))}.", param="model",
            )
        raise ModelNotFoundError.for_model(model, self._models)

    # -- registration (POST/DELETE /v1/models) --------------------------------------------
    async def register(self, body: dict[str, Any]) -> ModelEntry:
        entry = self._entry_from_request(body)
        existing = self._models.get(entry.identifier)
        if existing is not None and existing.provider_id == entry.provider_id and existing.source != "registered":
            return existing  # registering a known model is a no-op, like llama-stack
        self._registered[entry.identifier] = entry
        self._rebuild()
        if self._store is not None:
            await self._store.put_model(_entry_to_dict(entry))
        return entry

    async def unregister(self, identifier: str) -> None:
        await self._sync_registered()
        entry = self._models.get(identifier)
        if entry is None:
            raise ModelNotFoundError.for_model(identifier, self._models)
        if entry.source != "registered":
            raise InvalidRequestError(
                f"Model '{identifier}' comes from the {entry.source} and cannot be unregistered; "
                "remove it from the run config (or allowed_models) instead."
            )
        self._registered.pop(identifier, None)
        self._rebuild()
        if self._store is not None:
            await self._store.delete_model(identifier)

    def _entry_from_request(self, body: dict[str, Any]) -> ModelEntry:
        model_id = body.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            raise InvalidRequestError("'model_id' is required and must be a non-empty string.", param="model_id")
        provider_id = body.get("provider_id")
        if provider_id is None:
            prefix = model_id.partition("/")[0]
            if prefix in self.providers and "/" in model_id:
                provider_id = prefix
            elif len(self.providers) == 1:
                provider_id = next(iter(self.providers))
            else:
                raise InvalidRequestError(
                    f"'provider_id' is required: this server has providers {sorted(self.providers)}.",
                    param="provider_id",
                )
        if provider_id not in self.providers:
            raise NotFoundError(
                f"Provider '{provider_id}' is not configured (configured: {sorted(self.providers)}).",
                param="provider_id",
            )
        resource = body.get("provider_model_id") or _strip_prefix(model_id, provider_id)
        model_type = body.get("model_type") or "llm"
        if model_type not in ("llm", "embedding", "rerank"):
            raise InvalidRequestError("'model_type' must be 'llm', 'embedding' or 'rerank'.", param="model_type")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidRequestError("'metadata' must be an object.", param="metadata")
        if model_type == "embedding" and "embedding_dimension" not in metadata:
            raise InvalidRequestError(
                "Embedding models need metadata.embedding_dimension.", param="metadata.embedding_dimension"
            )
        identifier = model_id if model_id != resource else f"{provider_id}/{resource}"
        kind = _model_type(model_type)
        return ModelEntry(identifier, provider_id, resource, kind, metadata, "registered")

    # -- sharing registrations between worker processes -------------------------------------
    def _maybe_sync(self) -> None:
        if self._store is None:
            return
        now = time.monotonic()
        if now < self._next_sync:
            return
        self._next_sync = now + _SYNC_EVERY_S
        if self._store.models_version() != self._store_version and self._pending_sync is None:
            self._pending_sync = asyncio.get_running_loop().create_task(
                self._sync_registered(tolerate_outage=True)
            )
            self._pending_sync.add_done_callback(self._sync_done)

    def _sync_done(self, task: asyncio.Task[ServiceUnavailableError | None]) -> None:
        self._pending_sync = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("Could not re-read registered models: %s", task.exception())

    async def _sync_registered(
        self, force: bool = False, tolerate_outage: bool = False
    ) -> ServiceUnavailableError | None:
        """Re-read the registered models if another process changed them. With
        ``tolerate_outage``, an unreachable store keeps the known ones and is returned, not raised."""
        if self._store is None:
            return None
        version = self._store.models_version()
        if version == self._store_version and not force:
            return None
        try:
            rows = await self._store.load_models()
        except ServiceUnavailableError as exc:
            if not tolerate_outage:
                raise
            if self._store_outage is None:
                log.warning("Registered models cannot be re-read (%s); serving the %d known until the store is back.",
                            exc.code, len(self._registered))
            self._store_outage = exc
            return exc
        if self._store_outage is not None:
            log.info("Registered models re-read: the store is back.")
            self._store_outage = None
        self._store_version = version
        self._registered = {row["identifier"]: _entry_from_dict(row) for row in rows}
        self._rebuild()
        return None


def _model_type(value: Any) -> ModelType:
    return "embedding" if value == "embedding" else "rerank" if value == "rerank" else "llm"


def _strip_prefix(model_id: str, provider_id: str) -> str:
    prefix = provider_id + "/"
    return model_id[len(prefix):] if model_id.startswith(prefix) else model_id


def _entry_to_dict(entry: ModelEntry) -> dict[str, Any]:
    return {
        "identifier": entry.identifier,
        "provider_id": entry.provider_id,
        "provider_resource_id": entry.provider_resource_id,
        "model_type": entry.model_type,
        "metadata": entry.metadata,
        "created": entry.created,
    }


def _entry_from_dict(row: dict[str, Any]) -> ModelEntry:
    return ModelEntry(
        row["identifier"], row["provider_id"], row["provider_resource_id"],
        _model_type(row.get("model_type")),
        row.get("metadata") or {}, "registered", int(row.get("created") or time.time()),
    )
