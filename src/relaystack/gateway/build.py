"""The gateway's parts, made from the run config (called once, by ``api/app.py``).

With neither ``server.auth`` nor ``server.quota`` the gate is ``OpenGate`` (free) and there is
no guard: the offline default on a loopback bind stays friction-free. ``/metrics`` is on unless
``server.metrics: false``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relaystack import telemetry
from relaystack.errors import ConfigError, RelaystackError
from relaystack.gateway.admin_routes import KeyAdminRoutes
from relaystack.gateway.auth import Authenticator
from relaystack.gateway.counters import Counters, InProcessCounters
from relaystack.gateway.gate import Gate, OpenGate
from relaystack.gateway.guard import Guard
from relaystack.gateway.keygate import KeyGate
from relaystack.gateway.keys import ADMIN_KEY_MIN_LENGTH, load_server_secret
from relaystack.gateway.settings import (
    AuthSettings,
    CorsSettings,
    Price,
    QuotaSettings,
    TracingSettings,
    resolve_cors,
)
from relaystack.gateway.usage import Accountant, Pricing
from relaystack.state.base import SharedState
from relaystack.storage.base import KeyStore

__all__ = ["GatewayParts", "build_gateway"]

log = logging.getLogger("relaystack.gateway")

KEYS_CHANNEL = "keys"


@dataclass
class GatewayParts:
    gate: Gate
    guard: Guard | None = None
    routes: list[BaseRoute] = field(default_factory=list)
    cors: CorsSettings | None = None
    counters: Counters | None = None
    metrics: Any = None  # PrometheusTelemetry when server.metrics is on
    tracing: Any = None  # gateway.tracing.Tracing when server.tracing is set

    async def start(self) -> None:
        if self.counters is not None:
            await self.counters.start()
        if self.tracing is not None:
            telemetry.install(self.tracing)
        elif self.metrics is not None:
            telemetry.install(self.metrics)
        if self.metrics is not None:
            await self.metrics.start()

    async def stop(self) -> None:
        if self.metrics is not None:
            await self.metrics.stop()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)
        if self.counters is not None:
            await self.counters.stop()


def build_gateway(
    *,
    auth: AuthSettings | None,
    quota: QuotaSettings | None,
    cors: bool | CorsSettings | None,
    metrics: bool,
    pricing: Mapping[str, Price],
    tracing: TracingSettings | None = None,
    store: Any,
    db_path: Path | None,
    prefixes: Iterable[str],
    provider_of: Callable[[str], str | None],
    is_local: Callable[[str], bool],
    local_providers: Iterable[Any] = (),
    workers: int = 1,
    router_stats: Any = None,
    environ: Mapping[str, str] | None = None,
    state: SharedState | None = None,
) -> GatewayParts:
    env = os.environ if environ is None else environ
    parts = GatewayParts(gate=OpenGate(), cors=resolve_cors(cors))
    if metrics:
        parts.metrics = _prometheus(local_providers, router_stats)
        parts.routes.append(Route("/metrics", _metrics_endpoint(parts.metrics), methods=["GET"]))
    if tracing is not None:
        from relaystack.gateway.tracing import Tracing

        parts.tracing = Tracing(tracing, parts.metrics or telemetry.Telemetry())
    key_store = store if isinstance(store, KeyStore) else None
    if auth is None and quota is None:
        parts.routes.extend(KeyAdminRoutes(key_store, None).routes())
        return parts
    if key_store is None:
        raise ConfigError("server.auth/server.quota need a store that keeps keys and usage (SQLite, PostgreSQL "
                          "or memory).")
    shared_store = store.health().backend == "postgres"
    parts.counters = _counters(auth, db_path, workers, state, shared_store)
    accountant = Accountant(store, Pricing(pricing, is_local))
    authenticator = None
    if auth is not None:
        secret = _secret(auth, db_path, env, shared=shared_store)
        authenticator = Authenticator(store, secret, _admin_key(auth, env), auth.default_limits)
    on_change = share_key_changes(store, state) if state is not None and state.backend == "redis" else None
    parts.routes.extend(KeyAdminRoutes(store, authenticator, on_change).routes())
    gate = KeyGate(auth=authenticator, counters=parts.counters, accountant=accountant, provider_of=provider_of,
                   quota=quota)
    parts.gate = gate
    if authenticator is not None:
        parts.guard = Guard(gate, prefixes)
    return parts


def _prometheus(local_providers: Iterable[Any], router_stats: Any) -> Any:
    from relaystack.gateway.metrics import PrometheusTelemetry

    return PrometheusTelemetry(local_providers, router_stats)


def _metrics_endpoint(metrics: Any) -> Callable[[Request], Any]:
    from relaystack.gateway.metrics import CONTENT_TYPE

    async def endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE.split(";")[0],
                        headers={"content-type": CONTENT_TYPE})

    return endpoint


def _counters(
    auth: AuthSettings | None, db_path: Path | None, workers: int, state: SharedState | None, shared_store: bool
) -> Counters:
    backend = auth.limits_backend if auth is not None else "auto"
    redis = state is not None and state.backend == "redis"
    if backend == "auto":
        backend = "redis" if redis else "sqlite" if workers > 1 and db_path is not None else "memory"
        if workers > 1 and backend == "memory":
            log.warning("%d workers with an in-memory store: each worker counts limits on its own "
                        "(a key gets up to %d times its limits).", workers, workers)
    if backend == "redis":
        if not redis:
            raise ConfigError("server.auth.limits_backend: redis needs state.redis_url (or RELAYSTACK_REDIS_URL).")
        from relaystack.gateway.counters_redis import RedisCounters

        return RedisCounters(state)
    if backend == "memory":
        if shared_store:
            log.warning("server.auth.limits_backend: memory on the PostgreSQL store: each instance counts "
                        "limits on its own (set state.redis_url to share them).")
        return InProcessCounters()
    if db_path is None:
        raise ConfigError("server.auth.limits_backend: sqlite needs the SQLite store with a database file "
                          "(storage.db_path is :memory:, or the store is PostgreSQL: use redis).")
    from relaystack.gateway.counters_sqlite import SqliteCounters, limits_path

    return SqliteCounters(limits_path(db_path))


def _admin_key(auth: AuthSettings, env: Mapping[str, str]) -> str:
    value = auth.admin_key.get_secret_value() if auth.admin_key is not None else env.get("RELAYSTACK_ADMIN_KEY", "")
    if not value:
        raise ConfigError(
            "server.auth is on but there is no admin key: set RELAYSTACK_ADMIN_KEY (a random string of "
            f"{ADMIN_KEY_MIN_LENGTH}+ characters, e.g. `openssl rand -hex 32`)."
        )
    if len(value) < ADMIN_KEY_MIN_LENGTH:
        raise ConfigError(f"The admin key is too short: use {ADMIN_KEY_MIN_LENGTH} characters or more.")
    return value


def _secret(auth: AuthSettings, db_path: Path | None, env: Mapping[str, str], *, shared: bool = False) -> bytes:
    given = auth.key_secret.get_secret_value() if auth.key_secret is not None else env.get("RELAYSTACK_KEY_SECRET")
    if not given and shared:  # every instance must hash keys with the same secret, and none may make its own
        raise ConfigError(
            "server.auth on the PostgreSQL store needs the key secret every instance shares: set "
            f"RELAYSTACK_KEY_SECRET (a random string of {ADMIN_KEY_MIN_LENGTH}+ characters, e.g. `openssl rand -hex "
            "32`, the same on every instance; keep it out of the database) or server.auth.key_secret."
        )
    if not given and db_path is None:  # an in-memory store forgets its keys at exit: so may the secret
        return secrets.token_bytes(32)
    return load_server_secret(given, db_path.parent if db_path is not None else Path("."))


def share_key_changes(store: Any, state: SharedState) -> Callable[[], Awaitable[None]] | None:
    """With Redis and a store several instances share (PostgreSQL): every key change is broadcast
    with the store's new ``keys_version``, and each instance takes it at once (instead of at its
    store monitor's next probe), so a revoked key is refused everywhere within milliseconds.
    Returns what the admin routes call after each key write; None when the store needs no help
    (SQLite's workers share a memory-mapped stamp)."""
    observe = getattr(store, "observe_keys_version", None)
    if observe is None:
        return None

    def heard(message: bytes | None) -> None:
        if message:  # None (a gap in the broadcast): the store's monitor catches up within a probe
            observe(int(message))

    state.subscribe(KEYS_CHANNEL, heard)

    async def announce() -> None:
        try:
            await state.publish(KEYS_CHANNEL, b"%d" % store.keys_version())
        except RelaystackError as exc:  # the change is committed; the monitor spreads it anyway
            log.warning("Could not broadcast a key change (%s); other instances see it within a second", exc.code)

    return announce
