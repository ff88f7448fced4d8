"""The ``routing:`` section of run.yaml and a model's ``deployments:`` (the router's config).

A model may name several deployments (provider + upstream model id, weight, priority); the
router picks one per request, retries, falls back and cools failing ones down. ``routing:`` at
the top level sets the defaults, a model's own ``routing:`` overrides any of them:

    routing:                       # global defaults (all optional)
      strategy: priority           # priority | weighted | least-outstanding
      retries: 1                   # extra attempts on the same deployment, before the next one
      retry_on: [connect, timeout, 429, 5xx]
      backoff: {initial_s: 0.25, max_s: 4, multiplier: 2}   # full jitter
      retry_after_max_s: 10        # wait up to this long for a Retry-After; longer: next deployment
      deadline_s: 600              # one request, every attempt and wait included
      timeouts: {connect_s: 10, first_byte_s: 60, idle_s: 30, total_s: 600}
      cooldown: {failures: 3, window_s: 30, cooldown_s: 30}

Everything here is validated at start-up; a bad value is one ``ConfigError`` naming the key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "RETRYABLE_4XX",
    "BackoffConfig",
    "CooldownConfig",
    "DeploymentConfig",
    "RoutingConfig",
    "Strategy",
    "TimeoutsConfig",
    "merge_timeouts",
    "resolve_routing",
]

Strategy = Literal["priority", "weighted", "least-outstanding"]
# the only client errors worth another attempt: every other 4xx means the request itself is refused
RETRYABLE_4XX = frozenset({408, 429})
_RETRY_WORDS = ("connect", "timeout", "5xx")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutsConfig(_Strict):
    """Per attempt. Unset: the provider's own ``connect_timeout_s`` / ``read_timeout_s`` apply."""

    connect_s: float | None = Field(None, gt=0)
    # until the answer (JSON) or the first stream event arrives
    first_byte_s: float | None = Field(None, gt=0)
    # longest silence between two stream events
    idle_s: float | None = Field(None, gt=0)
    # one attempt, a whole stream included
    total_s: float | None = Field(None, gt=0)


class BackoffConfig(_Strict):
    """Exponential with full jitter: the n-th retry waits uniform(0, min(max_s, initial_s * multiplier**n))."""

    initial_s: float = Field(0.25, gt=0)
    max_s: float = Field(4.0, gt=0)
    multiplier: float = Field(2.0, ge=1)


class CooldownConfig(_Strict):
    """``failures`` within ``window_s`` -> skipped for ``cooldown_s``, then one probe request."""

    failures: int = Field(3, ge=1)
    window_s: float = Field(30.0, gt=0)
    cooldown_s: float = Field(30.0, gt=0)


class RoutingConfig(_Strict):
    strategy: Strategy = "priority"
    retries: int = Field(1, ge=0, le=10)
    retry_on: tuple[int | str, ...] = ("connect", "timeout", 429, "5xx")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    retry_after_max_s: float = Field(10.0, ge=0)
    deadline_s: float | None = Field(600.0, gt=0)
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    cooldown: CooldownConfig = Field(default_factory=CooldownConfig)

    @field_validator("retry_on")
    @classmethod
    def _known_retry_conditions(cls, items: tuple[int | str, ...]) -> tuple[int | str, ...]:
        out: list[int | str] = []
        for item in items:
            text = str(item).strip().lower()
            if text in _RETRY_WORDS:
                out.append(text)
                continue
            if not text.isdigit():
                raise ValueError(f"'{item}' is not one of connect, timeout, 5xx or an HTTP status")
            status = int(text)
            if 400 <= status < 500 and status not in RETRYABLE_4XX:
                raise ValueError(
                    f"{status} is never retried: a 4xx other than 408 and 429 means the request itself was "
                    "refused, and every deployment would refuse it again"
                )
            if not (status in RETRYABLE_4XX or 500 <= status <= 599):
                raise ValueError(f"{status} is not an error status (allowed: 408, 429, 500-599)")
            out.append(status)
        return tuple(out)


class DeploymentConfig(_Strict):
    """One place a model is served: a configured provider and the upstream's id for the model."""

    provider_id: str
    # default: the model's provider_model_id, else its model_id without a `provider_id/` prefix
    provider_model_id: str | None = None
    # unique within the model; default: provider_id. Shown in x-relaystack-deployment and /v1/health
    name: str | None = None
    weight: float = Field(1.0, gt=0)
    # lower is tried first (strategy: priority); ties keep the listed order
    priority: int = 0
    timeouts: TimeoutsConfig | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.provider_id


def merge_timeouts(base: TimeoutsConfig, override: TimeoutsConfig | None) -> TimeoutsConfig:
    if override is None:
        return base
    return base.model_copy(update=override.model_dump(exclude_unset=True))


def resolve_routing(defaults: RoutingConfig | None, override: dict[str, Any] | None) -> RoutingConfig:
    """The global defaults with a model's ``routing:`` laid over them, key by key (nested too).

    Raises ``ValidationError`` (the config loader names the model it came from)."""
    base = (defaults or RoutingConfig()).model_dump()
    if not override:
        return defaults or RoutingConfig()
    return RoutingConfig.model_validate(_deep_merge(base, override))


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def describe_errors(where: str, exc: ValidationError) -> list[str]:
    """One line per problem, ``where.key: message (got ...)``, like the config loader's."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        got = err.get("input")
        shown = "" if isinstance(got, dict | list | tuple) else f" (got {got!r})"
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"  - {where}{'.' + key if key else ''}: {message}{shown}")
    return lines
