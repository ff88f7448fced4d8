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
from starlette.routing import BaseRoute

from relaystack.api.admin import AdminRoutes, error_response
from relaystack.api.asgi import Receive, Scope, Send, internal_error, send_error
from relaystack.api.inference import InferenceRoutes, InferenceSettings
from relaystack.api.openapi import PREFIXES, RERANK_PATHS
from relaystack.config import RunConfig
from relaystack.console import ConsoleFeatures, ConsoleRoutes, TrafficStats
from relaystack.context import RequestContext
from relaystack.errors import ModelNotFoundError, NotFoundError, RelaystackError
from relaystack.frontends import Frontend, MessagesRoutes, ResponsesRoutes
from relaystack.frontends.messages_routes import send_anthropic_error
from relaystack.gateway.build import GatewayParts, build_gateway
from relaystack.health import HealthBook
from relaystack.logs import AccessLog
from relaystack.providers.base import Provider
from relaystack.providers.catalog import CATALOG, build_provider
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.recording import RecordingSettings, RecordMode, recording_store, wrap_upstream
from relaystack.recording.testid import bound_test_id
from relaystack.redaction import PROCESS, install_log_redaction, register_environment
from relaystack.registry import Registry
from relaystack.router import Router, RouterSettings
from relaystack.router.cooldown import CooldownState
from relaystack.shared_discovery import SharedDiscovery
from relaystack.state import SharedState, has_cooldowns, needs_of, open_state
from relaystack.storage.base import ResponseStore, Store
from relaystack.telemetry import current as telemetry
from relaystack.upstream.http_client import HttpUpstream

__all__ = ["RelaystackApp", "create_app"]

log = logging.getLogger("relaystack")


class RelaystackApp:
    def __init__(
        self, config: RunConfig, recording: RecordingSettings, store: Store | None,
        state: SharedState | None = None, workers: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``store`` holds registered models; it also stores chat completions unless
        ``storage.inference_store`` is false. ``state`` is the shared fast state (in-process
        or Redis) for limits, cooldowns and invalidations. ``environ`` (default: the process's)
        is where the gateway finds its admin key and key secret, so an app built for a given
        environment never reads another one."""
        self.config = config
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self.recording = recording
        self.store = store
        self._workers = workers or config.server.workers
        # set by whoever serves the app (``relaystack run``): named in the ready line
        self.public_url: str | None = None
        # False in all but one worker process, so start-up details are printed once
        self.announce = True
        # with --workers N: the file through which the workers list each provider's models once
        self.shared_discovery: SharedDiscovery | None = None
        self.health = HealthBook()
        self.access_log = AccessLog(config.server.access_log)
        self.state: SharedState = (
            state if state is not None else open_state(config.state, shared_by=None, env=self._environ)
        )
        # one index of the recordings folder for every provider (record and replay modes)
        self._recordings = recording_store(recording)
        self.providers = [self._build_provider(p.provider_id, p.provider_type, p.config)
                          for p in config.inference_providers]
        # every configured and environment key is scrubbed from every log line and error
        install_log_redaction()
        register_environment()
        if environ is not None:
            register_environment(environ)
        for provider in self.providers:
            PROCESS.add(provider.secrets(None))
        self.registry = Registry(self.providers, store, self.health)
        self.registry.add_config_models(config.models)
        settings = InferenceSettings(
            max_body_bytes=config.server.max_body_bytes,
            body_timeout_s=config.server.body_timeout_s,
            allow_faults=recording.mode is RecordMode.REPLAY,
        )
        completions_store = store if config.storage.inference_store else None
        self.router = Router(self.registry, RouterSettings.from_config(config), state=self._cooldowns(config))
        self.gateway = self._build_gateway(config, store)
        inference = InferenceRoutes(self.router, completions_store, settings, self.gateway.gate,
                                    on_end=self._inference_ended)
        self._hot: dict[tuple[str, str], Any] = {}
        for prefix in PREFIXES:
            self._hot[("POST", prefix + "/chat/completions")] = inference.chat
            self._hot[("POST", prefix + "/completions")] = inference.completions
            self._hot[("POST", prefix + "/embeddings")] = inference.embeddings
        # llama-stack's rerank: /v1alpha (0.3+ clients) and /v1 (0.2.x clients)
        for path in RERANK_PATHS:
            self._hot[("POST", path)] = inference.rerank
        # the front-ends (Responses, Messages) share the chat route's pipeline: its router and gate
        frontend = Frontend(self.router, inference.gate, settings, on_end=self._inference_ended)
        # storage.inference_store governs stored responses as it does stored chat completions
        kept = completions_store if isinstance(completions_store, ResponseStore) else None
        responses = ResponsesRoutes(frontend, kept)
        messages = MessagesRoutes(frontend)
        for prefix in PREFIXES:
            self._hot[("POST", prefix + "/responses")] = responses.create
            self._hot[("POST", prefix + "/messages")] = messages.create
            self._hot[("POST", prefix + "/messages/count_tokens")] = messages.count_tokens
        self.traffic: TrafficStats | None = None
        console_routes = self._build_console(config)
        admin = AdminRoutes(self.registry, completions_store, self.describe_recording, self.health,
                            self.describe_routes, self.router.describe,
                            self.describe_backends)
        self._admin = Starlette(
            routes=[*admin.routes(PREFIXES), *responses.routes(PREFIXES), *self.gateway.routes, *console_routes],
            exception_handlers={RelaystackError: _on_error, HTTPException: _on_http_error, Exception: _on_crash},
        )
        # record/replay file and match recordings by the test id a test harness sends
        self._test_ids = recording.mode.value != "live"
        self._guard = self.gateway.guard
        self._tracing = self.gateway.tracing
        self._observe_admin = self.gateway.metrics is not None
        self._cors = _cors_middleware(self.gateway, self._entry)
        self._plain = self._cors is None and not self._test_ids and self._tracing is None
        self._anthropic_paths = tuple(p + tail for p in PREFIXES for tail in ("/messages", "/messages/count_tokens"))

    def _cooldowns(self, config: RunConfig) -> CooldownState | None:
        """Deployment cooldowns on Redis when there is one (every instance skips what one cooled);
        in this process otherwise (None: the router's own)."""
        if self.state.backend == "redis":
            from relaystack.router.cooldown_shared import SharedCooldowns

            return SharedCooldowns(self.state)
        if self._workers > 1 and has_cooldowns(config):
            log.warning("%d worker processes without state.redis_url: each worker cools failing deployments "
                        "down on its own (set state.redis_url to share cooldowns).", self._workers)
        return None

    def _build_gateway(self, config: RunConfig, store: Store | None) -> GatewayParts:
        server = config.server
        local = [p for p in self.providers if p.provider_type.startswith("inline::")]
        local_ids = {p.provider_id for p in local}
        return build_gateway(
            auth=server.auth, quota=server.quota, cors=server.cors, metrics=server.metrics, pricing=config.pricing,
            tracing=server.tracing, store=store, db_path=getattr(store, "path", None), prefixes=PREFIXES,
            provider_of=self._provider_of, is_local=local_ids.__contains__, local_providers=local,
            workers=self._workers, router_stats=self.router.stats, state=self.state, environ=self._environ,
        )

    def _provider_of(self, model: str) -> str | None:
        """The provider a model id routes to, for keys restricted to some providers."""
        try:
            return self.registry.get(model).provider_id
        except ModelNotFoundError:
            prefix = model.partition("/")[0]
            return prefix if prefix in self.registry.providers else None

    def _build_console(self, config: RunConfig) -> list[BaseRoute]:
        """``server.console``: the console's routes, and the traffic stats its charts read (this
        process's inference requests, fed by ``_inference_ended``)."""
        if not config.server.console:
            return []
        self.traffic = TrafficStats(workers=self._workers)
        # server.auth on: the page asks for the admin key, and the admin API has keys and usage
        auth = self.gateway.guard is not None
        features = ConsoleFeatures(auth=auth, usage=auth, metrics=self.gateway.metrics is not None,
                                   workers=self._workers)
        return ConsoleRoutes(self.traffic, features).routes()

    def _build_provider(self, provider_id: str, provider_type: str, config: dict[str, Any]) -> Provider:
        row = CATALOG.get(provider_type)
        remote = row is not None and row.remote
        upstream = wrap_upstream(HttpUpstream(), self.recording, self._recordings) if remote else None
        provider = build_provider(provider_id, provider_type, dict(config), upstream)  # type: ignore[arg-type]
        if isinstance(provider, OpenAICompatProvider):
            provider.credentials_optional = self.recording.mode is RecordMode.REPLAY
        return provider

    def describe_recording(self) -> dict[str, Any]:
        live = self.recording.mode is RecordMode.LIVE
        return {"mode": self.recording.mode.value, "dir": None if live else str(self.recording.directory)}

    def describe_routes(self) -> list[tuple[str, str]]:
        """(method, path) of every route served, hot and admin alike (``GET /v1/inspect/routes``)."""
        routes = list(self._hot)
        for route in self._admin.routes:
            if not getattr(route, "include_in_schema", True):  # the console's pages: not the API
                continue
            path = getattr(route, "path", None)
            for method in sorted(getattr(route, "methods", None) or ()):
                if path is not None and method != "HEAD":
                    routes.append((method, path.replace(":path}", "}")))
        return routes

    def _inference_ended(self, scope: Scope, ctx: RequestContext) -> None:
        self.health.request_ended(ctx)
        self.access_log.inference(scope["method"], scope["path"], ctx)
        if self.traffic is not None:
            self.traffic.add(ctx)

    def describe_backends(self) -> dict[str, dict[str, Any]]:
        """The store's and the shared state's connection state, for /v1/health."""
        out: dict[str, dict[str, Any]] = {}
        if self.store is not None:
            out["store"] = self.store.health().to_dict()
        out["state"] = self.state.health()
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self._plain:  # no CORS, no recording test ids, no tracing: no wrapper frames
                await self._http(scope, receive, send)
            elif self._cors is not None:  # server.cors: outermost, so preflights and refusals carry it
                await self._cors(scope, receive, send)
            else:
                await self._entry(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _entry(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._test_ids:
            with bound_test_id(scope):
                await self._traced(scope, receive, send)
            return
        await self._traced(scope, receive, send)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._tracing is None:
            await self._http(scope, receive, send)
            return
        with self._tracing.span(scope):
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The key first (server.auth, before any body is read), then the inference routes by a
        dict lookup; everything else through Starlette."""
        if self._guard is not None and not self._guard.passes(scope):  # passes(): a cached key, no I/O
            try:
                await self._guard.check(scope)
            except RelaystackError as exc:
                await self._refuse(scope, send, exc)
                return
        handler = self._hot.get((scope["method"], scope["path"]))
        if handler is not None:
            await handler(scope, receive, send)
            return
        await self._serve_admin(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, exc: RelaystackError) -> None:
        """A 401/403 from the guard, in the shape the route's clients read (Anthropic's for Messages)."""
        started = time.monotonic()
        if scope["path"] in self._anthropic_paths:
            await send_anthropic_error(send, exc)
        else:
            await send_error(send, exc)
        hot = (scope["method"], scope["path"]) in self._hot
        telemetry().route_done(scope["path"] if hot else "unauthenticated", exc.status_code, 0.0)
        self.access_log.plain(scope["method"], scope["path"], exc.status_code, started)

    async def _serve_admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.access_log.enabled and not self._observe_admin:
            await self._admin(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def noting_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._admin(scope, receive, noting_status)
        finally:
            if self.access_log.enabled:
                self.access_log.plain(scope["method"], scope["path"], status, started)
            # the Starlette routes in the metrics, by route template and status
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
        await self.state.start()
        await self.gateway.start()
        for provider in self.providers:
            await provider.start()
        await self.registry.start(self.shared_discovery)
        # Everything built at start-up lives as long as the process: keep it out of the cyclic
        # garbage collector's full passes, which otherwise walk it all and stall requests.
        gc.collect()
        gc.freeze()
        self._announce()

    def _announce(self) -> None:
        where = f" on {self.public_url}" if self.public_url else ""
        if not self.announce:
            log.info("relaystack worker %d ready%s", os.getpid(), where)
            return
        models = self.registry.models()
        for provider in self.providers:
            own = [m.identifier for m in models if m.provider_id == provider.provider_id]
            shown = ", ".join(own[:8]) + (f", ... ({len(own) - 8} more)" if len(own) > 8 else "")
            log.info("provider '%s' (%s): %d model%s%s", provider.provider_id, provider.provider_type, len(own),
                     "" if len(own) == 1 else "s", f": {shown}" if own else "")
        log.info(
            "relaystack ready%s: %d provider%s, %d models (record mode: %s)", where, len(self.providers),
            "" if len(self.providers) == 1 else "s", len(models), self.recording.mode.value,
        )

    async def shutdown(self) -> None:
        await self.registry.stop()
        for provider in self.providers:
            try:
                await provider.stop()
            except Exception:
                log.exception("Provider %s did not stop cleanly", provider.provider_id)
        await self.gateway.stop()
        await self.state.stop()
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
    workers: int | None = None,
) -> RelaystackApp:
    env = os.environ if environ is None else environ
    recording = RecordingSettings.from_env(
        record_mode, recordings_dir, env,
        config_mode=config.recording.mode.value if config.recording.mode is not RecordMode.LIVE else None,
        config_dir=config.recording.dir,
    )
    store = _make_store(config, env)
    state = open_state(config.state, shared_by=_shared_by(config, workers), needed_by=needs_of(config), env=env)
    return RelaystackApp(config, recording, store, state, workers, environ=env)


def _shared_by(config: RunConfig, workers: int | None) -> str | None:
    """Why this process is not the only one serving (see ``relaystack.state.factory``), or None."""
    if config.storage.backend == "postgres":
        return "storage.backend: postgres"
    count = workers or config.server.workers
    return f"{count} worker processes" if count > 1 else None


def _make_store(config: RunConfig, env: Mapping[str, str]) -> Store:
    from relaystack.storage.memory import MemoryStore
    from relaystack.storage.sqlite import SqliteStore

    if config.storage.backend == "postgres":
        from relaystack.storage.postgres import PgSettings, PostgresStore

        return PostgresStore(PgSettings(config.storage.resolved_dsn(env), pool_size=config.storage.pool_size))
    if config.storage.db_path is not None and str(config.storage.db_path) == ":memory:":
        return MemoryStore()
    return SqliteStore(config.storage.resolved_db_path(env))


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
