"""llama-stack's storage sections -> relaystack's ``storage:`` (used by ``config.parse_config``).

llama-stack has written where its SQL stores live three ways, and relaystack reads all three:

1. a top-level ``inference_store`` (and ``metadata_store``) that *is* the store's config:
   ``{type: sqlite, db_path}`` or ``{type: postgres, host, port, db, user, password}``, bare or
   under ``sql_store_config``;
2. (0.3) a top-level ``inference_store: {backend: sql_default, table_name: ...}`` naming an
   entry of ``storage.backends``;
3. (0.3 and later, OGX) ``storage.backends.<name>: {type: sql_postgres, host, ...}`` referenced from
   ``storage.stores.inference`` (``.responses``, ``.metadata``).

relaystack keeps stored completions, stored responses and registered models in ONE store, so
the inference store decides (then the responses store, then the metadata store). A PostgreSQL
one becomes ``storage.backend: postgres`` with a DSN built from its parts (each percent-encoded;
the DSN is never logged). A SQLite one keeps relaystack's own file, except for shape 1's
``db_path`` (which relaystack has always honoured): a llama-stack database file also holds
llama-stack's own tables. A store relaystack cannot be (Redis, MongoDB, an unknown type), a
reference to a backend that is not defined, or a PostgreSQL backend without a ``user`` is a
``ConfigError`` naming the key. Explicit relaystack keys (``storage.backend``, ``dsn``, ``db_path``)
win over all of it. No message here quotes a value: it could be the password.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from relaystack.errors import ConfigError
from relaystack.storage.pg_dsn import build_dsn

__all__ = ["adapt_storage"]

log = logging.getLogger("relaystack.config")

_POSTGRES_TYPES = ("postgres", "sql_postgres", "kv_postgres")
_SQLITE_TYPES = ("sqlite", "sql_sqlite", "kv_sqlite")
# the stores whose backend relaystack's one store follows, in order
_STORE_ROLES = ("inference", "responses", "metadata")
# llama-stack's tuning knobs with no counterpart (relaystack's own schema, pool and writer)
_NOT_NEEDED = {
    "type", "table_name", "namespace", "max_overflow", "pool_recycle", "pool_pre_ping",
    "max_write_queue_size", "num_writers", "backend", "sql_store_config",
}
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True, slots=True)
class _Choice:
    path: str  # where the store's config is, for messages: "storage.backends.sql_default"
    spec: dict[str, Any]
    legacy: bool  # shape 1 (a top-level store config): its SQLite db_path is honoured


def adapt_storage(out: dict[str, Any], source: str) -> dict[str, Any]:
    """The ``storage:`` mapping relaystack validates, with llama-stack's sections read and removed."""
    given = out.get("storage")
    storage = dict(given) if isinstance(given, dict) else {}
    top = {role: out.pop(f"{role}_store", None) for role in ("inference", "metadata")}
    backends = storage.pop("backends", None)
    stores = storage.pop("stores", None)
    for deprecated in ("kv", "sql"):  # OGX's older spelling of backends; nothing to map
        if storage.pop(deprecated, None) is not None:
            log.warning("%s: storage.%s is not read; use storage.backends + storage.stores.", source, deprecated)
    if backends is not None and not isinstance(backends, dict):
        raise ConfigError(f"{source}: storage.backends must be a mapping of backend name to its config.")
    if stores is not None and not isinstance(stores, dict):
        raise ConfigError(f"{source}: storage.stores must be a mapping of store name to {{backend: ...}}.")
    choice = _choose(top, backends or {}, stores or {}, source)
    if choice is None:
        return storage
    if any(key in storage for key in ("backend", "dsn", "db_path")):
        log.warning("%s: storage.backend/dsn/db_path are set: llama-stack's %s is not read.", source, choice.path)
        return storage
    return {**storage, **_to_relaystack(choice, source)}


def _choose(
    top: dict[str, Any], backends: dict[str, Any], stores: dict[str, Any], source: str
) -> _Choice | None:
    for role in _STORE_ROLES:
        if (found := _from_store(f"storage.stores.{role}", stores.get(role), backends, source)) is not None:
            return found
        if role in top and (found := _from_top(f"{role}_store", top[role], backends, source)) is not None:
            return found
    return _only_postgres_backend(backends, source)


def _from_store(path: str, ref: Any, backends: dict[str, Any], source: str) -> _Choice | None:
    if ref is None:
        return None
    if not isinstance(ref, dict) or not isinstance(ref.get("backend"), str):
        raise ConfigError(f"{source}: {path} must be a mapping with 'backend: <a name under storage.backends>'.")
    return _backend(path, ref["backend"], backends, source)


def _from_top(path: str, section: Any, backends: dict[str, Any], source: str) -> _Choice | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: {path} must be a mapping (a store config, or 'backend: <name>').")
    if isinstance(section.get("backend"), str):
        return _backend(path, section["backend"], backends, source)
    inner = section.get("sql_store_config")
    legacy = path == "inference_store"  # only its db_path was ever honoured (metadata's is a KV file)
    if isinstance(inner, dict):
        return _Choice(f"{path}.sql_store_config", inner, legacy)
    if "type" in section or "db_path" in section:
        return _Choice(path, section, legacy)
    return None


def _backend(path: str, name: str, backends: dict[str, Any], source: str) -> _Choice:
    spec = backends.get(name)
    if not isinstance(spec, dict):
        defined = ", ".join(sorted(backends)) or "none"
        raise ConfigError(f"{source}: {path} uses backend '{name}', which storage.backends does not define "
                          f"(defined: {defined}).")
    return _Choice(f"storage.backends.{name}", spec, legacy=False)


def _only_postgres_backend(backends: dict[str, Any], source: str) -> _Choice | None:
    """No store names a backend: a PostgreSQL backend is still what the user means, if unambiguous."""
    postgres = {name: spec for name, spec in backends.items()
                if isinstance(spec, dict) and spec.get("type") in _POSTGRES_TYPES}
    if not postgres:
        if backends:
            log.warning("%s: storage.backends has no PostgreSQL backend; relaystack keeps its own SQLite file "
                        "(storage.dir/db_path).", source)
        return None
    targets = {_target(spec) for spec in postgres.values()}
    if len(targets) > 1:
        raise ConfigError(
            f"{source}: storage.backends has PostgreSQL backends for different databases "
            f"({', '.join(sorted(postgres))}) and no storage.stores.inference names the one relaystack should use."
        )
    name = sorted(postgres)[0]
    return _Choice(f"storage.backends.{name}", postgres[name], legacy=False)


def _target(spec: dict[str, Any]) -> tuple[str, str, str, str]:
    return tuple(str(spec.get(key, "")) for key in ("host", "port", "db", "user"))  # type: ignore[return-value]


def _to_relaystack(choice: _Choice, source: str) -> dict[str, Any]:
    kind = choice.spec.get("type", "sqlite" if "db_path" in choice.spec else None)
    if kind is None:
        raise ConfigError(f"{source}: {choice.path} has no 'type' (sql_postgres, sql_sqlite, ...).")
    if kind in _POSTGRES_TYPES:
        return _postgres(choice, source)
    if kind in _SQLITE_TYPES:
        db_path = choice.spec.get("db_path")
        if choice.legacy and db_path:
            return {"db_path": db_path}
        if not choice.legacy:
            log.warning("%s: %s is SQLite: relaystack keeps its own SQLite file (storage.dir/db_path), not "
                        "llama-stack's database file.", source, choice.path)
        return {}
    shown = f"'{kind}'" if isinstance(kind, str) and kind.replace("_", "").isalnum() else "not a known type"
    raise ConfigError(
        f"{source}: {choice.path}.type is {shown}: relaystack keeps stored completions, responses and registered "
        "models in SQLite (the default) or PostgreSQL. Point the store at a sql_postgres backend, or set "
        "storage.backend: postgres with storage.dsn."
    )


def _postgres(choice: _Choice, source: str) -> dict[str, Any]:
    spec, path = choice.spec, choice.path
    unknown = sorted(set(spec) - _NOT_NEEDED - {"host", "port", "db", "user", "password", "ssl_mode", "sslmode",
                                                  "ca_cert_path", "gss_encmode", "pool_size"})
    if unknown:
        log.warning("%s: %s: %s not read by relaystack; ignored.", source, path, ", ".join(unknown))
    user = _text(spec, "user", path, source, required=True)
    query: dict[str, str] = {}
    ssl_mode = _text(spec, "ssl_mode", path, source) or _text(spec, "sslmode", path, source)
    if ssl_mode is not None:
        if ssl_mode not in _SSL_MODES:
            raise ConfigError(f"{source}: {path}.ssl_mode must be one of {', '.join(_SSL_MODES)}.")
        query["sslmode"] = ssl_mode
    if (ca_cert := _text(spec, "ca_cert_path", path, source)) is not None:
        query["sslrootcert"] = ca_cert
    if _text(spec, "gss_encmode", path, source) == "require":
        raise ConfigError(f"{source}: {path}.gss_encmode: require is not supported (relaystack's driver, asyncpg, "
                          "does not encrypt with GSSAPI); use ssl_mode instead.")
    dsn = build_dsn(
        host=_text(spec, "host", path, source) or "localhost", port=_port(spec, path, source),
        database=_text(spec, "db", path, source) or "llamastack", user=user,
        password=_text(spec, "password", path, source), query=query,
    )  # fmt: skip
    storage: dict[str, Any] = {"backend": "postgres", "dsn": dsn}
    if spec.get("pool_size") is not None:
        storage["pool_size"] = spec["pool_size"]
    log.info("%s: using llama-stack's %s: PostgreSQL store.", source, path)
    return storage


def _text(spec: dict[str, Any], key: str, path: str, source: str, *, required: bool = False) -> str | None:
    value = spec.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{source}: {path}.{key} is required for a PostgreSQL store (as llama-stack requires).")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f"{source}: {path}.{key} must be a string (quote it in the YAML).")
    return str(value)


def _port(spec: dict[str, Any], path: str, source: str) -> int:
    value = spec.get("port", 5432)
    if value is None or value == "":
        return 5432
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{source}: {path}.port must be a port number (1-65535).")
    return int(text)
