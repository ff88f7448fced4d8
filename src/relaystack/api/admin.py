"""The routes off the hot path: models, providers, health, version, stored completions.

Served by Starlette. Every response shape here is one both the OpenAI SDK and
llama-stack-client parse.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relaystack import __version__
from relaystack.api.openapi import openapi_document
from relaystack.errors import InvalidRequestError, NotFoundError, NotImplementedYetError, RelaystackError
from relaystack.registry import Registry
from relaystack.storage.base import Store

__all__ = ["AdminRoutes", "json_response"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


class AdminRoutes:
    def __init__(
        self,
        registry: Registry,
        store: Store | None,
        describe_recording: Callable[[], dict[str, Any]],
        describe_backends: Callable[[], dict[str, dict[str, Any]]] | None = None,
    ):
        self.registry = registry
        self.store = store
        self.describe_recording = describe_recording
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
        routes: list[BaseRoute] = [Route("/openapi.json", self.openapi, methods=["GET"])]
        for prefix in prefixes:
            routes.extend(Route(prefix + path, handler, methods=methods) for path, handler, methods in table)
        return routes

    # -- models ------------------------------------------------------------------------------
    async def list_models(self, request: Request) -> Response:
        return json_response({"object": "list", "data": [m.to_wire() for m in await self.registry.models_fresh()]})

    async def get_model(self, request: Request) -> Response:
        return json_response((await self.registry.get_fresh(request.path_params["model_id"])).to_wire())

    async def register_model(self, request: Request) -> Response:
        entry = await self.registry.register(await _json_body(request))
        return json_response(entry.to_wire())

    async def unregister_model(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        await self.registry.unregister(model_id)
        return json_response({"id": model_id, "object": "model", "deleted": True})

    # -- stored chat completions -------------------------------------------------------------
    async def list_completions(self, request: Request) -> Response:
        store = self._require_store()
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequestError("'order' must be 'asc' or 'desc'.", param="order")
        limit_text = query.get("limit", "20")
        if not limit_text.isdigit():
            raise InvalidRequestError("'limit' must be a positive integer.", param="limit")
        page = await store.list_completions(
            after=query.get("after") or None, limit=int(limit_text), model=query.get("model") or None,
            order=order,  # type: ignore[arg-type]
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
        providers = {pid: await p.health() for pid, p in self.registry.providers.items()}
        backends = self.describe_backends()
        ready = all(h.get("status") == "OK" for h in (*providers.values(), *backends.values()))
        return json_response({
            "status": "OK",
            "ready": ready,
            "providers": providers,
            **backends,
            "recording": self.describe_recording(),
        })

    async def version(self, request: Request) -> Response:
        return json_response({"version": __version__})

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document())


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc.msg}.") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return data


def error_response(exc: RelaystackError) -> Response:
    response = json_response(exc.to_dict(), exc.status_code)
    response.headers.update(exc.headers)
    return response
