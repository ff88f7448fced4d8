"""The run configuration: a llama-stack-style run.yaml, inference subset.

``load_config(path)`` reads the YAML, applies ``${env...}`` substitution, drops disabled
providers, warns about sections relaystack does not serve, and validates the rest.
Every error names the file, the key and what was expected.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from relaystack.config_storage import adapt_storage
from relaystack.envsubst import substitute
from relaystack.errors import ConfigError
from relaystack.gateway.settings import AuthSettings, CorsSettings, Price, QuotaSettings, TracingSettings
from relaystack.recording.settings import RecordMode
from relaystack.routing_config import DeploymentConfig, RoutingConfig, describe_errors, resolve_routing
from relaystack.storage.pg_dsn import normalize_dsn

__all__ = [
    "ModelConfig",
    "ProviderConfig",
    "RecordingConfig",
    "RunConfig",
    "ServerConfig",
    "StateConfig",
    "StorageConfig",
    "default_home",
    "load_config",
    "load_run_config",
    "parse_config",
]

# `relaystack run` without a config file (or with "default") serves the built-in distribution
DEFAULT_CONFIG = "default"

log = logging.getLogger("relaystack.config")

# Sections of a llama-stack run.yaml that relaystack does not serve: warned about, ignored.
UNSERVED_SECTIONS = (
    "shields", "vector_dbs", "vector_stores", "datasets", "scoring_fns", "benchmarks", "tool_groups",
    "external_providers_dir", "external_apis_dir", "telemetry", "container_image", "conversations",
    "connectors", "registered_resources", "safety", "prompts", "conversations_store",
)
UNSERVED_APIS = (
    "agents", "batches", "datasetio", "eval", "files", "post_training", "safety", "scoring",
    "telemetry", "tool_runtime", "vector_io", "responses", "conversations", "prompts",
)


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """``$RELAYSTACK_HOME`` of ``env`` (default: the process's environment), else ~/.relaystack."""
    home = (os.environ if env is None else env).get("RELAYSTACK_HOME")
    return Path(home or Path.home() / ".relaystack").expanduser()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderConfig(_Strict):
    provider_id: str
    provider_type: str
    config: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Strict):
    model_id: str | None = None
    provider_id: str | None = None
    provider_model_id: str | None = None
    model_type: Literal["llm", "embedding", "rerank"] = "llm"
    metadata: dict[str, Any] = Field(default_factory=dict)
    # several places that serve this model, instead of provider_id (see relaystack.routing_config)
    deployments: list[DeploymentConfig] | None = None
    # this model's overrides of the top-level routing: section
    routing: dict[str, Any] | None = None


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    port: int = Field(8321, ge=1, le=65535)
    host: str = "127.0.0.1"
    workers: int = Field(1, ge=1, le=64)
    # request bodies above this are refused with 413 before being buffered
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # stop reading a request body that trickles slower than this (slowloris)
    body_timeout_s: float = Field(30.0, gt=0)
    # request line + headers above this get 431 and the connection is closed
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=1024 * 1024)
    # a connection must deliver a request's headers within this (slow-loris clients are cut)
    header_timeout_s: float = Field(10.0, gt=0)
    # an idle keep-alive connection is closed after this
    keepalive_timeout_s: float = Field(5.0, gt=0)
    # the web console at /console (and / redirecting there); false: neither is served
    console: bool = True
    # open connections per worker process; beyond it a new connection gets 503 and is closed
    max_connections: int = Field(2048, ge=1)
    # requests in progress per worker process (streams included); beyond it: 503 with Retry-After
    max_concurrent_requests: int = Field(1024, ge=1)
    # one line per request on the relaystack.access logger (INFO)
    access_log: bool = True
    # the gateway (relaystack.gateway.settings): keys, quotas, CORS, metrics, traces
    auth: AuthSettings | None = None
    quota: QuotaSettings | None = None
    cors: bool | CorsSettings | None = None
    metrics: bool = True  # GET /metrics (Prometheus)
    tracing: TracingSettings | None = None
    # HTTPS (llama-stack's keys); tls_cafile also requires client certificates (mutual TLS)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    tls_cafile: Path | None = None


class StorageConfig(_Strict):
    # sqlite (default: one file, one machine) or postgres (several instances share it)
    backend: Literal["sqlite", "postgres"] = "sqlite"
    # directory for every SQLite file; default ~/.relaystack (or $RELAYSTACK_HOME)
    dir: Path | None = None
    # store every chat completion unless the request says store: false
    inference_store: bool = True
    db_path: Path | None = None
    # postgres: the DSN (postgresql://user:pass@host:5432/db, or libpq's "host=... dbname=..."); default
    # $RELAYSTACK_POSTGRES_DSN. Never logged nor shown: messages and /v1/health say host:port/db
    dsn: str | None = Field(None, repr=False)
    # postgres: connections per instance (each worker process has its own pool)
    pool_size: int = Field(10, ge=1, le=200)

    def resolved_dsn(self, env: Mapping[str, str] | None = None) -> str:
        """The DSN as a checked ``postgresql://`` URL; ``ConfigError`` (never quoting it) otherwise."""
        key = "storage.dsn" if self.dsn else "RELAYSTACK_POSTGRES_DSN"
        dsn = self.dsn or (os.environ if env is None else env).get("RELAYSTACK_POSTGRES_DSN")
        if not dsn:
            raise ConfigError(
                "storage.backend is postgres but no DSN is set: set storage.dsn in the run config "
                "(e.g. dsn: ${env.RELAYSTACK_POSTGRES_DSN}) or the RELAYSTACK_POSTGRES_DSN environment variable."
            )
        return normalize_dsn(dsn, key)

    def resolved_db_path(self, env: Mapping[str, str] | None = None) -> Path:
        if self.db_path is not None:
            return self.db_path.expanduser()
        return (self.dir.expanduser() if self.dir else default_home(env)) / "relaystack.db"


class StateConfig(_Strict):
    """Shared fast state (rate-limit counters, cooldowns, invalidations); see relaystack.state."""

    # redis://host:6379/0; default $RELAYSTACK_REDIS_URL; none: in-process state
    redis_url: str | None = Field(None, repr=False)
    # every Redis key and channel starts with this (several deployments can share one Redis)
    prefix: str = "relaystack:"

    def resolved_redis_url(self, env: Mapping[str, str] | None = None) -> str | None:
        return self.redis_url or (os.environ if env is None else env).get("RELAYSTACK_REDIS_URL") or None


class RecordingConfig(_Strict):
    mode: RecordMode = RecordMode.LIVE
    dir: Path | None = None


class RunConfig(_Strict):
    version: int | str = 2
    image_name: str | None = None
    apis: list[str] = Field(default_factory=list)
    providers: dict[str, list[ProviderConfig]] = Field(default_factory=dict)
    models: list[ModelConfig] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    # retries, fallbacks, timeouts, cooldowns; when absent, a model without deployments is relayed as is
    routing: RoutingConfig | None = None
    # US dollars per million tokens, by the model id clients send (usage and budgets)
    pricing: dict[str, Price] = Field(default_factory=dict)
    # where the file came from, for messages
    source: str = "<built-in default>"

    @field_validator("providers")
    @classmethod
    def _unique_ids(cls, providers: dict[str, list[ProviderConfig]]) -> dict[str, list[ProviderConfig]]:
        seen: set[str] = set()
        for entry in providers.get("inference", []):
            if entry.provider_id in seen:
                raise ValueError(f"provider_id '{entry.provider_id}' is used twice")
            seen.add(entry.provider_id)
        return providers

    @property
    def inference_providers(self) -> list[ProviderConfig]:
        return self.providers.get("inference", [])


def load_run_config(config: str | None) -> RunConfig:
    """``relaystack run``'s CONFIG argument: a run.yaml path, or the built-in default."""
    if config is None or config == DEFAULT_CONFIG:
        text = resources.files("relaystack.distributions").joinpath("default.yaml").read_text()
        return parse_config(yaml.safe_load(text), source="<built-in default>")
    return load_config(Path(config))


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror}).") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    return parse_config(raw if raw is not None else {}, source=str(path))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without the offending line itself (it may hold a password)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem or exc.context or 'parse error'} (line {mark.line + 1}, column {mark.column + 1})"
    return type(exc).__name__


def parse_config(raw: Any, *, source: str = "<config>", env: dict[str, str] | None = None) -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, found {type(raw).__name__}.")
    expanded = substitute(raw, env)
    try:
        shaped = _adapt_llama_stack_sections(expanded, source)
        config = RunConfig.model_validate({**shaped, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(source, exc)) from None
    _check_models_reference_providers(config)
    _check_routing(config)
    if not config.inference_providers:
        log.warning("%s configures no inference provider: this server serves no models. Add one under "
                    "providers.inference (see examples/run.yaml).", source)
    return config


def _adapt_llama_stack_sections(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Map llama-stack keys onto relaystack's, drop what is not served, with a warning each."""
    out = dict(raw)
    for key in UNSERVED_SECTIONS:
        if out.pop(key, None) not in (None, [], {}):
            log.warning("%s: section '%s' is not served by relaystack (inference only); ignored.", source, key)
    for key in ("logging", "logging_config"):
        out.pop(key, None)
    apis = out.get("apis") or []
    if isinstance(apis, list) and (ignored := [a for a in apis if a in UNSERVED_APIS]):
        log.warning("%s: apis %s are not served by relaystack; only inference and models are.", source, ignored)
    providers = out.get("providers") or {}
    if not isinstance(providers, dict):
        raise ConfigError(f"{source}: 'providers' must be a mapping of api name to a list of providers.")
    kept: dict[str, Any] = {}
    for api, entries in providers.items():
        if api != "inference":
            log.warning("%s: providers.%s is not served by relaystack; ignored.", source, api)
            continue
        if not isinstance(entries, list):
            raise ConfigError(f"{source}: providers.inference must be a list, found {type(entries).__name__}.")
        kept[api] = [_drop_module(e, source) for e in entries
                     if not (isinstance(e, dict) and e.get("provider_id") is None)]
    out["providers"] = kept
    out["storage"] = adapt_storage(out, source)
    _check_tls(out.get("server"), source)
    _warn_unknown_server_keys(out.get("server"), source)
    return out


# llama-stack's server: keys relaystack reads no meaning into (warned about as such, not as typos)
_LLAMA_STACK_SERVER_KEYS = frozenset({"disable_ipv6"})


def _warn_unknown_server_keys(server: Any, source: str) -> None:
    """``server:`` ignores keys it does not know (llama-stack has a few more), so a misspelt limit
    would silently keep its default: say so, with the nearest known key."""
    if not isinstance(server, dict):
        return
    known = set(ServerConfig.model_fields)
    for key in server:
        if key in known:
            continue
        if key in _LLAMA_STACK_SERVER_KEYS:
            log.warning("%s: server.%s (llama-stack) has no effect in relaystack; ignored.", source, key)
            continue
        close = difflib.get_close_matches(str(key), sorted(known), n=1)
        hint = f" Did you mean server.{close[0]}?" if close else f" Known keys: {', '.join(sorted(known))}."
        log.warning("%s: server.%s is not a relaystack setting; ignored.%s", source, key, hint)


def _check_tls(server: Any, source: str) -> None:
    """HTTPS needs both files; a CA file alone would silently serve plain HTTP."""
    if not isinstance(server, dict):
        return
    given = {key for key in ("tls_certfile", "tls_keyfile", "tls_cafile") if server.get(key)}
    if given and not {"tls_certfile", "tls_keyfile"} <= given:
        raise ConfigError(f"{source}: server.tls_certfile and server.tls_keyfile are needed together for HTTPS "
                          f"(got only {sorted(given)}).")


def _drop_module(entry: Any, source: str) -> Any:
    """llama-stack's ``module:`` names an external provider package; relaystack loads none."""
    if isinstance(entry, dict) and "module" in entry:
        entry = {k: v for k, v in entry.items() if k != "module"}
        log.warning("%s: provider '%s': 'module' (external provider packages) is not supported; ignored.",
                    source, entry.get("provider_id"))
    return entry


def _check_models_reference_providers(config: RunConfig) -> None:
    ids = [p.provider_id for p in config.inference_providers]
    for index, model in enumerate(config.models):
        if model.deployments is not None:
            _check_deployments(config, index, model, ids)
        elif model.provider_id is None:
            if len(ids) != 1:
                raise ConfigError(
                    f"{config.source}: models[{index}].provider_id is required when there is not exactly "
                    f"one inference provider (configured: {ids})."
                )
        elif model.provider_id not in ids:
            # the provider may be disabled by an env var: warn and skip instead of failing start-up
            log.warning(
                "%s: models[%d] refers to provider '%s', which is not configured or disabled; skipped.",
                config.source, index, model.provider_id,
            )
        if model.model_type == "embedding" and "embedding_dimension" not in model.metadata:
            raise ConfigError(
                f"{config.source}: models[{index}] is an embedding model; metadata.embedding_dimension is required."
            )
        if model.model_id is None and model.provider_model_id is None:
            raise ConfigError(f"{config.source}: models[{index}] needs model_id or provider_model_id.")


def _check_deployments(config: RunConfig, index: int, model: ModelConfig, ids: list[str]) -> None:
    where = f"{config.source}: models[{index}]"
    if not model.model_id:
        raise ConfigError(f"{where} has deployments and needs a model_id: the id clients send.")
    if model.provider_id is not None or model.provider_model_id is not None:
        raise ConfigError(
            f"{where} ('{model.model_id}'): give either provider_id/provider_model_id or deployments, not both "
            "(each deployment names its provider_id and provider_model_id)."
        )
    if not model.deployments:
        raise ConfigError(f"{where} ('{model.model_id}'): deployments is empty; list at least one.")
    seen: set[str] = set()
    for position, deployment in enumerate(model.deployments):
        name = deployment.display_name
        if name in seen:
            raise ConfigError(
                f"{where}.deployments[{position}]: the name '{name}' is used twice in '{model.model_id}'; "
                "give each deployment a unique name."
            )
        seen.add(name)
        if deployment.provider_id not in ids:
            log.warning(
                "%s.deployments[%d] refers to provider '%s', which is not configured or disabled; skipped.",
                where, position, deployment.provider_id,
            )


def _check_routing(config: RunConfig) -> None:
    """Each model's routing: laid over the global section must be valid: fail at start-up, not later."""
    for index, model in enumerate(config.models):
        if model.routing is None:
            continue
        try:
            resolve_routing(config.routing, model.routing)
        except ValidationError as exc:
            lines = describe_errors(f"models[{index}].routing", exc)
            message = f"{config.source}: invalid routing for model '{model.model_id}':\n" + "\n".join(lines)
            raise ConfigError(message) from None


def _describe_validation_error(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) or _may_be_secret(err["loc"]) else f" (got {got!r})"
        lines.append(f"  - {where}: {err['msg']}{shown}")
    return "\n".join(lines)


# a value under a key named like these is never repeated in a message (it may be a credential)
_SECRET_WORDS = ("password", "secret", "token", "key", "dsn", "url", "credential", "auth")


def _may_be_secret(loc: tuple[int | str, ...]) -> bool:
    return any(isinstance(part, str) and any(word in part.lower() for word in _SECRET_WORDS) for part in loc)
