"""The gateway's run.yaml keys: ``server.auth``, ``server.quota``, ``server.cors``, ``pricing``.

llama-stack's shapes are read where relaystack can honour them (``server.cors``, ``server.quota``,
``server.auth.provider_config``); the ones it cannot (OAuth2/JWKS, GitHub, custom endpoints,
Kubernetes, access policies) stop start-up with a message naming the alternative, because an
auth setting that is silently ignored leaves a server open that its owner believes closed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "AuthSettings",
    "CorsSettings",
    "Limits",
    "Price",
    "QuotaSettings",
    "TracingSettings",
    "resolve_cors",
]

VIRTUAL_KEYS = "virtual_keys"

# llama-stack's auth provider types, and why relaystack does not take them
_REFUSED_AUTH_TYPES = {
    "oauth2_token": "OAuth2 tokens (JWKS or introspection)",
    "github_token": "GitHub tokens",
    "custom": "a custom token-validation endpoint",
    "kubernetes": "Kubernetes service-account tokens",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_Strict):
    """Per key (or per key and model). None: no limit of that kind."""

    rpm: int | None = Field(None, ge=1, description="requests per minute (sliding 60 s)")
    tpm: int | None = Field(None, ge=1, description="tokens per minute, prompt + completion, from real usage")
    max_concurrent: int | None = Field(None, ge=1, description="requests in flight at once")
    rpd: int | None = Field(None, ge=1, description="requests per day (sliding 24 h)")

    def is_empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_concurrent is None and self.rpd is None


class AuthSettings(_Strict):
    """``server.auth``: virtual keys managed with an admin key."""

    # llama-stack's discriminated provider config; relaystack serves {type: virtual_keys}
    provider_config: dict[str, Any] = Field(default_factory=lambda: {"type": VIRTUAL_KEYS})
    # llama-stack's attribute-based rules: not served (refused when non-empty)
    access_policy: list[Any] = Field(default_factory=list)
    route_policy: list[Any] = Field(default_factory=list)
    # default: $RELAYSTACK_ADMIN_KEY
    admin_key: SecretStr | None = None
    # the HMAC secret key hashes are made with; default $RELAYSTACK_KEY_SECRET, else a file
    # created once beside the database (``<storage dir>/key-secret``, mode 0600)
    key_secret: SecretStr | None = None
    # limits for keys created without their own
    default_limits: Limits = Field(default_factory=Limits)
    # where the limit counters live: memory (one process), sqlite (a file beside the store,
    # shared by --workers N), redis (state.redis_url: every instance), auto (redis when
    # configured, else sqlite when there are several workers, else memory)
    limits_backend: Literal["auto", "memory", "sqlite", "redis"] = "auto"

    @field_validator("provider_config")
    @classmethod
    def _served_type(cls, value: dict[str, Any]) -> dict[str, Any]:
        kind = value.get("type", VIRTUAL_KEYS)
        if kind == VIRTUAL_KEYS:
            extra = sorted(set(value) - {"type"})
            if extra:
                raise ValueError(f"provider_config of type virtual_keys takes no other keys (got {extra})")
            return value
        what = _REFUSED_AUTH_TYPES.get(str(kind))
        described = f"llama-stack's '{kind}' ({what})" if what else f"'{kind}'"
        raise ValueError(
            f"type {described} is not supported by relaystack. Use `type: virtual_keys` (an admin key from "
            "RELAYSTACK_ADMIN_KEY issues keys: `relaystack keys create`), or validate those tokens in a proxy "
            "in front of relaystack."
        )

    @field_validator("access_policy", "route_policy")
    @classmethod
    def _no_policies(cls, value: list[Any]) -> list[Any]:
        if value:
            raise ValueError(
                "llama-stack's access rules are not supported by relaystack; restrict a key with its "
                "`models` and `providers` lists instead (relaystack keys create --model ...)"
            )
        return value


class QuotaSettings(BaseModel):
    """llama-stack's ``server.quota``: requests per day, per key (or per client address when auth is off)."""

    model_config = ConfigDict(extra="forbid")

    kvstore: dict[str, Any] | None = None  # llama-stack's counter store: relaystack keeps its own
    anonymous_max_requests: int = Field(100, ge=1)
    authenticated_max_requests: int = Field(1000, ge=1)
    period: Literal["day"] = "day"


class CorsSettings(_Strict):
    """llama-stack's ``server.cors`` object (``true`` means its localhost development preset)."""

    allow_origins: list[str] = Field(default_factory=list)
    allow_origin_regex: str | None = None
    allow_methods: list[str] = Field(default_factory=lambda: ["OPTIONS"])
    allow_headers: list[str] = Field(default_factory=list)
    allow_credentials: bool = False
    expose_headers: list[str] = Field(default_factory=list)
    max_age: int = Field(600, ge=0)

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> CorsSettings:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("allow_origins '*' cannot be combined with allow_credentials: true; list the origins")
        return self


def resolve_cors(value: bool | CorsSettings | None) -> CorsSettings | None:
    if value is None or value is False:
        return None
    if value is True:  # llama-stack's development preset: localhost on any port
        return CorsSettings(
            allow_origin_regex=r"https?://localhost:\d+",
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization", "X-Requested-With"],
        )
    return value


class Price(_Strict):
    """US dollars per million tokens."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    # cached prompt tokens, when the upstream reports them; default: the input price
    cached_input_per_million: float | None = Field(None, ge=0)


class TracingSettings(_Strict):
    """OpenTelemetry traces over OTLP/HTTP; off unless an endpoint is given."""

    otlp_endpoint: str | None = None  # e.g. http://127.0.0.1:4318/v1/traces
    service_name: str = "relaystack"
