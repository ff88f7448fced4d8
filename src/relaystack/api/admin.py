"""The routes off the hot path: models, providers, health, version, routes, stored completions.

Served by Starlette. Every response shape here is one both the OpenAI SDK and
llama-stack-client (0.2.x and 0.7.x) parse. llama-stack 0.7's admin namespace
(``/v1alpha/admin/...``: providers, inspect/routes, health, version) is served too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relaystack import __version__
from relaystack.api.openapi import openapi_document
from relaystack.api.validate import check_register, query_choice, query_int
from relaystack.counters import COUNTERS
from relaystack.errors import NotFoundError, NotImplementedYetError, RelaystackError
from relaystack.health import HealthBook
from relaystack.json_routes import json_response, read_json_object
from relaystack.registry import Registry
from relaystack.storage.base import Store

__all__ = ["AdminRoutes", "error_response"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


# llama-stack 0.7's admin namespace, served beside the /v1 routes
ADMIN_PREFIX = "/v1alpha/admin"
# the api_filter values of GET /v1/inspect/routes (llama-stack-client 0.7)
_ROUTE_FILTERS = ("v1", "v1alpha", "v1beta", "deprecated")
_DEPRECATED_PREFIX = "/v1/openai/v1/"
# routes whose work the inference providers do (their provider types are listed for them)
_INFERENCE_TAILS = ("/chat/completions", "/completions", "/embeddings")


class AdminRoutes:
    def __init__(
        self,
        registry: Registry,
        store: Store | None,
        describe_recording: Callable[[], dict[str, Any]],
        health: HealthBook | None = None,
        describe_routes: Callable[[], list[tuple[str, str]]] | None = None,
        describe_deployments: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        describe_backends: Callable[[], dict[str, dict[str, Any]]] | None = None,
    ):
        self.registry = registry
        self.store = store
        self.describe_recording = describe_recording
        self.health_book = health if health is not None else registry.health
        self.describe_routes = describe_routes or (lambda: [])
        # the router's view: each multi-deployment model's deployments and their state
        self.describe_deployments = describe_deployments
        # {"store": {...}, "redis": {...}}: each with "status" "OK" or not (see RelaystackApp)
        self.describe_backends = describe_backends or dict

    def routes(self, prefixes: tuple[str, ...]) -> list[BaseRoute]:
        table: list[tuple[str, Handler, list[str]]] = [
            ("/models", self.list_models, ["GET"]),
            ("/models", self.register_model, ["POST"]),
            ("/models/{model_id:path}", self.get_model, ["GET"]),
            ("/models/{model_id:path}", self.unregister_model, ["DELETE"]),
            ("/chat/completions", self.list_completions, ["GET"]),
            ("/chat/completions/{completion_id}", self.get_completion, ["GET"]),
            ("/providers", self.list_providers, ["GET"]),
            ("/providers/{provider_id}", self.get_provider, ["GET"]),
            ("/health", self.health, ["GET"]),
            ("/version", self.version, ["GET"]),
        ]
        admin: list[tuple[str, Handler, list[str]]] = [
            ("/providers", self.list_providers, ["GET"]),
            ("/providers/{provider_id}", self.get_provider, ["GET"]),
            ("/inspect/routes", self.list_routes, ["GET"]),
            ("/health", self.health, ["GET"]),
            ("/version", self.version, ["GET"]),
        ]
        routes: list[BaseRoute] = [
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/v1/inspect/routes", self.list_routes, methods=["GET"]),
        ]
        for prefix in prefixes:
            routes.extend(Route(prefix + path, handler, methods=methods) for path, handler, methods in table)
        routes.extend(Route(ADMIN_PREFIX + path, handler, methods=methods) for path, handler, methods in admin)
        return routes

    # -- models ------------------------------------------------------------------------------
    async def list_models(self, request: Request) -> Response:
        return json_response({"object": "list", "data": [m.to_wire() for m in await self.registry.models_fresh()]})

    async def get_model(self, request: Request) -> Response:
        return json_response((await self.registry.get_fresh(request.path_params["model_id"])).to_wire())

    async def register_model(self, request: Request) -> Response:
        entry = await self.registry.register(check_register(await read_json_object(request)))
        return json_response(entry.to_wire())

    async def unregister_model(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        await self.registry.unregister(model_id)
        return json_response({"id": model_id, "object": "model", "deleted": True})

    # -- stored chat completions -------------------------------------------------------------
    async def list_completions(self, request: Request) -> Response:
        store = self._require_store()
        query = request.query_params
        order = query_choice(query, "order", ("asc", "desc"), "desc")
        limit = query_int(query, "limit", 20)  # the store checks the range
        page = await store.list_completions(
            after=query.get("after") or None, limit=limit, model=query.get("model") or None,
            order=order,
        )
        return json_response(page)

    async def get_completion(self, request: Request) -> Response:
        return json_response(await self._require_store().get_completion(request.path_params["completion_id"]))

    def _require_store(self) -> Store:
        if self.store is None:
            raise NotImplementedYetError(
                "Stored chat completions are off (storage.inference_store: false in the run config)."
            )
        return self.store

    # -- providers, health, version -----------------------------------------------------------
    async def list_providers(self, request: Request) -> Response:
        return json_response({"data": [await self._provider_info(pid) for pid in self.registry.providers]})

    async def get_provider(self, request: Request) -> Response:
        provider_id = request.path_params["provider_id"]
        if provider_id not in self.registry.providers:
            raise NotFoundError(
                f"Provider '{provider_id}' not found (configured: {sorted(self.registry.providers)}).",
                param="provider_id",
            )
        return json_response(await self._provider_info(provider_id))

    async def _provider_info(self, provider_id: str) -> dict[str, Any]:
        provider = self.registry.providers[provider_id]
        return {
            "api": "inference",
            "provider_id": provider_id,
            "provider_type": provider.provider_type,
            "config": provider.public_config(),
            "health": await provider.health(),
        }

    async def health(self, request: Request) -> Response:
        """Liveness (``status``), readiness of local models (``ready``) and, per provider, the
        ``outcome`` of its last discovery and request (ok, degraded, unreachable, unknown) with
        ``last_discovery`` and ``last_request``. Never calls an upstream: a probe is free."""
        providers: dict[str, Any] = {}
        for pid, provider in self.registry.providers.items():
            providers[pid] = {**provider.status(), **self.health_book[pid].to_dict()}
        backends = self.describe_backends()
        ready = all(h.get("status") == "OK" for h in (*providers.values(), *backends.values()))
        return json_response({
            "status": "OK",
            "ready": ready,
            "providers": providers,
            **backends,
            "recording": self.describe_recording(),
            "deployments": await self.describe_deployments() if self.describe_deployments else {},
            # what failed quietly since start-up (this process): e.g. completions not stored
            "counters": COUNTERS.snapshot(),
        })

    async def list_routes(self, request: Request) -> Response:
        """llama-stack's route listing: ``{"data": [{route, method, provider_types}]}``."""
        wanted = query_choice(request.query_params, "api_filter", _ROUTE_FILTERS, None)
        inference_types = sorted({p.provider_type for p in self.registry.providers.values()})
        data = []
        for method, path in sorted(set(self.describe_routes()), key=lambda r: (r[1], r[0])):
            if not _route_matches(path, wanted):
                continue
            served_by = inference_types if method == "POST" and path.endswith(_INFERENCE_TAILS) else []
            data.append({"route": path, "method": method, "provider_types": served_by})
        return json_response({"data": data})

    async def version(self, request: Request) -> Response:
        return json_response({"version": __version__})

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document())


def _route_matches(path: str, wanted: str | None) -> bool:
    deprecated = path.startswith(_DEPRECATED_PREFIX)
    if wanted == "deprecated":
        return deprecated
    if deprecated:
        return False
    return wanted is None or path.startswith(f"/{wanted}/")


def error_response(exc: RelaystackError) -> Response:
    response = json_response(exc.to_dict(), exc.status_code)
    response.headers.update(exc.headers)
    return response
