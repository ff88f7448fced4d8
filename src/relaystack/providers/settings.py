"""Typed ``config:`` blocks of remote providers, as a llama-stack run.yaml names their keys.

``RemoteSettings`` holds the keys every remote provider reads (llama-stack's ``base_url`` or
older ``url``, ``api_key`` or ``api_token``, ``allowed_models``, ``refresh_models``...); a
provider with more keys (Azure's ``api_base``, watsonx's ``project_id``, Bedrock's
``region_name``...) subclasses it. ``parse_settings`` turns a bad value into one line naming
the key, and never echoes a secret. ``sample()`` is the config a user starts from.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from relaystack.errors import ConfigError

__all__ = ["RemoteSettings", "config_keys", "parse_settings", "secret_value"]

log = logging.getLogger("relaystack.providers")

# keys of a llama-stack provider config that relaystack reads nowhere but accepts silently
_IGNORED_QUIETLY = frozenset({"network"})


class RemoteSettings(BaseModel):
    """The ``config:`` block of a remote provider in run.yaml."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    base_url: str | None = Field(None, validation_alias=AliasChoices("base_url", "url"))
    api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("api_key", "api_token"))
    allowed_models: list[str] | None = None
    refresh_models: bool = True
    refresh_interval_s: float = Field(300.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(600.0, gt=0, validation_alias=AliasChoices("read_timeout_s", "timeout"))
    extra_headers: dict[str, str] = Field(default_factory=dict)
    # False for self-signed self-hosted servers, or the path of a CA bundle
    tls_verify: bool | str = True

    # keys of this provider's config whose values are credentials (masked, redacted)
    secret_keys: ClassVar[tuple[str, ...]] = ("api_key",)

    @classmethod
    def sample(cls, base_url: str | None, key_env: str | None, env_prefix: str) -> dict[str, Any]:
        """The config `relaystack providers` prints: every value from the environment, with defaults."""
        sample: dict[str, Any] = {"base_url": f"${{env.{env_prefix}_BASE_URL:={base_url or ''}}}"}
        if key_env:
            sample["api_key"] = f"${{env.{key_env}:=}}"
        return sample

    def key(self) -> str | None:
        return secret_value(self.api_key)


def secret_value(value: SecretStr | None) -> str | None:
    secret = value.get_secret_value() if value is not None else ""
    return secret or None


def config_keys(settings: type[RemoteSettings]) -> list[str]:
    """The keys a run.yaml may use, llama-stack's aliases included (``url`` for ``base_url``...)."""
    keys: list[str] = []
    for name, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            keys.extend(str(a) for a in alias.choices)
        else:
            keys.append(name)
    return list(dict.fromkeys(keys))


S = TypeVar("S", bound=RemoteSettings)


def parse_settings(settings: type[S], provider_id: str, config: dict[str, Any]) -> S:
    """Validate a provider's config: unknown keys are warned about; a bad value is one line naming the key."""
    known = set(config_keys(settings)) | _IGNORED_QUIETLY
    if unknown := sorted(set(config) - known):
        log.warning("Provider '%s': config keys %s are not used by relaystack.", provider_id, unknown)
    # llama-stack configs often carry an empty string for an unset optional value (`${env.X:=}`)
    cleaned = {k: v for k, v in config.items() if not (v == "" and k not in ("api_key", "api_token"))}
    try:
        return settings.model_validate(cleaned)
    except ValidationError as exc:
        raise ConfigError(_describe(provider_id, settings, exc)) from None


_TYPE_TAG = re.compile(r"^(?:bool|str|int|float|none|list\[.*\]|dict\[.*\]|literal\[.*\]|function-.*)$", re.I)


def _describe(provider_id: str, settings: type[RemoteSettings], exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    # a union's errors carry the type tried in their location (`tls_verify.bool`): not a key
    parts = [str(p) for p in first["loc"] if not _TYPE_TAG.match(str(p))]
    where = ".".join(parts) or "<root>"
    secret = any(part in settings.secret_keys or "key" in part or "token" in part or "secret" in part
                 for part in parts)
    given = first.get("input")
    shown = "" if secret or isinstance(given, dict | list) else f" (got {given!r})"
    keys = {e["loc"][0] for e in errors if e["loc"]}
    more = f" (and {len(keys) - 1} more keys)" if len(keys) > 1 else ""
    return f"providers.inference[{provider_id}].config.{where}: {first['msg']}{shown}{more}"
