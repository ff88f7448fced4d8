"""What ``relaystack providers`` prints: every provider type, its config keys and a sample config.

Built from the catalog's data and each provider's typed settings, so it cannot drift from
what the server accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices

from relaystack.providers.catalog import CATALOG, settings_class
from relaystack.providers.settings import RemoteSettings
from relaystack.providers.spec import ProviderSpec

__all__ = ["SHARED_KEYS", "describe", "describe_all", "own_keys", "sample_config", "text_listing"]

_CAPABILITY_NAMES = ("chat", "completions", "embeddings", "rerank", "tools")
# keys every remote provider reads besides its own (printed once)
SHARED_KEYS = ("allowed_models", "refresh_models", "refresh_interval_s", "connect_timeout_s", "read_timeout_s",
               "extra_headers", "tls_verify")


def _keys(settings: type[RemoteSettings]) -> list[str]:
    """Provider-specific keys first, then the shared ones; llama-stack aliases in parentheses."""
    own = [n for n in settings.model_fields if n not in RemoteSettings.model_fields]
    shared = list(RemoteSettings.model_fields)
    keys = []
    for name in own + shared:
        alias = settings.model_fields[name].validation_alias
        others = [str(a) for a in alias.choices if a != name] if isinstance(alias, AliasChoices) else []
        keys.append(f"{name} ({', '.join(others)})" if others else name)
    return keys


def _env_prefix(row: ProviderSpec) -> str:
    if row.key_env:
        for suffix in ("_API_KEY", "_API_TOKEN", "_TOKEN", "_ACCESS_TOKEN"):
            if row.key_env.endswith(suffix):
                return row.key_env[: -len(suffix)]
    return row.provider_type.split("::")[-1].upper().replace("-", "_")


def sample_config(row: ProviderSpec) -> dict[str, Any]:
    if row.sample is not None:
        return dict(row.sample)
    settings = settings_class(row)
    if settings is None:
        return {key: "..." for key in row.config_keys[:1]} if row.config_keys else {}
    return settings.sample(row.base_url, row.key_env, _env_prefix(row))


def describe(row: ProviderSpec) -> dict[str, Any]:
    settings = settings_class(row)
    caps = row.capabilities
    return {
        "provider_type": row.provider_type,
        "class": row.class_name,
        "summary": row.summary,
        "config_keys": _keys(settings) if settings is not None else list(row.config_keys),
        "provider_data_key_field": row.key_field,
        "key_env": row.key_env,
        "key_required": row.key_required if row.remote else False,
        "capabilities": [n for n in _CAPABILITY_NAMES if getattr(caps, n)] + (
            [f"images: {caps.images}"] if row.remote else []),
        "embedding_models": dict(row.embedding_models),
        "sample_config": sample_config(row),
    }


def describe_all() -> list[dict[str, Any]]:
    return [describe(row) for row in sorted(CATALOG.values(), key=lambda r: (r.remote, r.provider_type))]


def own_keys(info: dict[str, Any]) -> list[str]:
    return [k for k in info["config_keys"] if k.split(" ")[0] not in SHARED_KEYS]


def text_listing(described: list[dict[str, Any]]) -> str:
    lines = []
    for info in described:
        lines.append(f"{info['provider_type']:30} {info['summary']}")
        lines.append(f"{'':30}   config: {', '.join(own_keys(info)) or '-'}")
        how = []
        if info["key_env"]:
            how.append(info["key_env"] if info["key_required"] else f"{info['key_env']} (optional)")
        if info["provider_data_key_field"]:
            how.append(f'per request {{"{info["provider_data_key_field"]}": ...}}')
        if how:
            lines.append(f"{'':30}   key: {' or '.join(how)}")
    shared = ", ".join(k for k in _keys(RemoteSettings) if k.split(" ")[0] in SHARED_KEYS)
    lines.append(f"\nEvery remote provider also reads: {shared}.")
    lines.append("`relaystack providers TYPE` prints one type's sample run.yaml entry (--json: everything).")
    return "\n".join(lines)
