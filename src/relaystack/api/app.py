"""The composition root: the only place that wires config, storage, recording, providers,
the registry and the routes together.

``RelaystackApp`` is a raw ASGI app. The inference routes are dispatched by a dict lookup
straight to their handlers; everything else goes to a Starlette app.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from relaystack.api.admin import AdminRoutes, error_response
from relaystack.api.asgi import Receive, Scope, Send, internal_error, send_error
from relaystack.api.inference import InferenceRoutes, InferenceSettings
from relaystack.api.openapi import PREFIXES
from relaystack.config import RunConfig
from relaystack.errors import ModelNotFoundError, NotFoundError, RelaystackError
from relaystack.gateway.build import GatewayParts, build_gateway
from relaystack.providers.base import Provider
from relaystack.providers.catalog import CATALOG, build_provider
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.recording import RecordingSettings, wrap_upstream
from relaystack.registry import Registry
from relaystack.router import Router
from relaystack.storage.base import Store
from relaystack.telemetry import current as telemetry
from relaystack.upstream.aiohttp_client import AiohttpUpstream

__all__ = ["RelaystackApp", "create_app"]

log = logging.getLogger("relaystack")


class RelaystackApp:
    def __init__(self, config: RunConfig, recording: RecordingSettings, store: Store | None) -> None:
        """``store`` holds registered models; it also stores chat completions unless
        ``storage.inference_store`` is false."""
        self.config = config
        self.recording = recording
        self.store = store
        self.providers = [self._build_provider(p.provider_id, p.provider_type, p.config)
                          for p in config.inference_providers]
        self.registry = Registry(self.providers, store)
        self.registry.add_config_models(config.models)
        settings = InferenceSettings(
            max_body_bytes=config.server.max_body_bytes,
            body_timeout_s=config.server.body_timeout_s,
            allow_faults=recording.mode.value == "replay",
        )
        completions_store = store if config.storage.inference_store else None
        self.router = Router(self.registry)
        self.gateway = self._build_gateway(config, store)
        inference = InferenceRoutes(self.router, completions_store, settings, self.gateway.gate)
        self._hot: dict[tuple[str, str], Any] = {}
        for prefix in PREFIXES:
            self._hot[("POST", prefix + "/chat/completions")] = inference.chat
            self._hot[("POST", prefix + "/completions")] = inference.completions
            self._hot[("POST", prefix + "/embeddings")] = inference.embeddings
        admin = AdminRoutes(self.registry, completions_store, self.describe_recording)
        self._admin = Starlette(
            routes=admin.routes(PREFIXES) + self.gateway.routes,
            exception_handlers={RelaystackError: _on_error, HTTPException: _on_http_error, Exception: _on_crash},
        )
        self._guard = self.gateway.guard
        self._tracing = self.gateway.tracing
        self._observe_admin = self.gateway.metrics is not None
        self._cors = _cors_middleware(self.gateway, self._http)

    def _build_gateway(self, config: RunConfig, store: Store | None) -> GatewayParts:
        server = config.server
        local = [p for p in self.providers if p.provider_type.startswith("inline::")]
        local_ids = {p.provider_id for p in local}
        return build_gateway(
            auth=server.auth, quota=server.quota, cors=server.cors, metrics=server.metrics, pricing=config.pricing,
            tracing=server.tracing,
            store=store, db_path=getattr(store, "path", None), prefixes=PREFIXES,
            provider_of=self._provider_of, is_local=local_ids.__contains__, local_providers=local,
        )

    def _provider_of(self, model: str) -> str | None:
        """The provider a model id routes to, for keys restricted to some providers."""
        try:
            return self.registry.get(model).provider_id
        except ModelNotFoundError:
            prefix = model.partition("/")[0]
            return prefix if prefix in self.registry.providers else None

    def _build_provider(self, provider_id: str, provider_type: str, config: dict[str, Any]) -> Provider:
        row = CATALOG.get(provider_type)
        upstream = wrap_upstream(AiohttpUpstream(), self.recording) if row is not None and row.remote else None
        provider = build_provider(provider_id, provider_type, dict(config), upstream)  # type: ignore[arg-type]
        if isinstance(provider, OpenAICompatProvider):
            provider.credentials_optional = self.recording.mode.value == "replay"
        return provider

    def describe_recording(self) -> dict[str, Any]:
        live = self.recording.mode.value == "live"
        return {"mode": self.recording.mode.value, "dir": None if live else str(self.recording.directory)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self._cors is not None:
                await self._cors(scope, receive, send)
            else:
                await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._tracing is None:
            await self._dispatch(scope, receive, send)
            return
        with self._tracing.span(scope):
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._guard is not None and not self._guard.passes(scope):
            # server.auth: the key is checked before any body is read (passes(): cached, no I/O)
            try:
                await self._guard.check(scope)
            except RelaystackError as exc:
                await send_error(send, exc)
                hot = (scope["method"], scope["path"]) in self._hot
                telemetry().route_done(scope["path"] if hot else "unauthenticated", exc.status_code, 0.0)
                return
        handler = self._hot.get((scope["method"], scope["path"]))
        if handler is not None:
            await handler(scope, receive, send)
        elif self._observe_admin:
            await self._observed_admin(scope, receive, send)
        else:
            await self._admin(scope, receive, send)

    async def _observed_admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The Starlette routes, counted in the metrics by route template and status."""
        started = time.monotonic()
        status = 500

        async def watching_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._admin(scope, receive, watching_send)
        finally:
            telemetry().route_done(_route_label(scope), status, time.monotonic() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("Start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        if self.store is not None:
            await self.store.start()
        await self.gateway.start()
        for provider in self.providers:
            await provider.start()
        await self.registry.start()
        # Everything built at start-up lives as long as the process: keep it out of the cyclic
        # garbage collector's full passes, which otherwise walk it all and stall requests.
        gc.collect()
        gc.freeze()
        log.info(
            "relaystack ready: %d providers, %d models (record mode: %s)",
            len(self.providers), len(self.registry.models()), self.recording.mode.value,
        )

    async def shutdown(self) -> None:
        await self.registry.stop()
        for provider in self.providers:
            try:
                await provider.stop()
            except Exception:
                log.exception("Provider %s did not stop cleanly", provider.provider_id)
        await self.gateway.stop()
        if self.store is not None:
            await self.store.stop()


def _route_label(scope: Scope) -> str:
    """A route's template (``/v1/models/{model_id}``), never the raw path: bounded, and free of
    whatever a client put in it."""
    if "endpoint" not in scope:
        return "unmatched"
    path = str(scope["path"])
    for name, value in (scope.get("path_params") or {}).items():
        if value:
            path = path.replace(str(value), "{" + name + "}")
    return path


def _cors_middleware(gateway: GatewayParts, app: Any) -> Any:
    settings = gateway.cors
    if settings is None:
        return None
    from starlette.middleware.cors import CORSMiddleware

    return CORSMiddleware(
        app, allow_origins=settings.allow_origins, allow_origin_regex=settings.allow_origin_regex,
        allow_methods=settings.allow_methods, allow_headers=settings.allow_headers,
        allow_credentials=settings.allow_credentials, expose_headers=settings.expose_headers,
        max_age=settings.max_age,
    )


def create_app(
    config: RunConfig,
    *,
    record_mode: str | None = None,
    recordings_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RelaystackApp:
    env = os.environ if environ is None else environ
    recording = RecordingSettings.from_env(
        record_mode, recordings_dir, env,
        config_mode=config.recording.mode if config.recording.mode != "live" else None,
        config_dir=config.recording.dir,
    )
    store = _make_store(config)
    return RelaystackApp(config, recording, store)


def _make_store(config: RunConfig) -> Store:
    from relaystack.storage.memory import MemoryStore
    from relaystack.storage.sqlite import SqliteStore

    if config.storage.db_path is not None and str(config.storage.db_path) == ":memory:":
        return MemoryStore()
    return SqliteStore(config.storage.resolved_db_path())


async def _on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RelaystackError)
    return error_response(exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFoundError(
            f"No route {request.method} {request.url.path}. The API lives under /v1/ "
            "(and /v1/openai/v1/); GET /openapi.json lists every route."
        ))
    error = RelaystackError(f"{request.method} is not allowed on {request.url.path}.", code="method_not_allowed")
    return Response(orjson.dumps(error.to_dict()), status_code=exc.status_code, media_type="application/json")


async def _on_crash(request: Request, exc: Exception) -> Response:
    log.exception("Unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(internal_error())
