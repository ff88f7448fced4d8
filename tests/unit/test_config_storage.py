"""llama-stack's storage sections (every generation of run.yaml) -> ``storage.backend: postgres`` and a
DSN, clear errors for what cannot map, and the password in no message, log line or repr."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from relaystack.config import RunConfig, load_config, parse_config
from relaystack.errors import ConfigError

PASSWORD = "pa/ss?w#rd@:% 1"  # every character a URL must encode


def postgres(**overrides: Any) -> dict[str, Any]:
    return {"type": "sql_postgres", "host": "db.internal", "port": 6543, "db": "stack", "user": "ls",
            "password": PASSWORD, **overrides}


def parse(raw: dict[str, Any], env: dict[str, str] | None = None) -> RunConfig:
    return parse_config({"providers": {}, **raw}, env=env or {})


def dsn_of(config: RunConfig) -> Any:
    assert config.storage.backend == "postgres" and config.storage.dsn is not None
    return urlsplit(config.storage.resolved_dsn({}))


@pytest.fixture(autouse=True)
def no_password_logged(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    yield
    assert PASSWORD not in caplog.text and "pa/ss" not in caplog.text


def test_ogx_storage_backends_and_stores_map_to_postgres() -> None:
    config = parse({"storage": {
        "backends": {"kv_default": {"type": "kv_redis", "url": "redis://r:6379"}, "sql_default": postgres()},
        "stores": {"metadata": {"backend": "kv_default", "namespace": "registry"},
                   "inference": {"backend": "sql_default", "table_name": "inference_store",
                                 "max_write_queue_size": 10000, "num_writers": 4}},
    }})
    dsn = dsn_of(config)
    assert (dsn.hostname, dsn.port, dsn.path, dsn.username) == ("db.internal", 6543, "/stack", "ls")
    assert unquote(dsn.password) == PASSWORD  # percent-encoded, so it survives the URL
    assert PASSWORD not in repr(config) and "pa%2Fss" not in repr(config)


def test_the_postgres_demo_shape_top_level_stores_naming_backends() -> None:
    """llama-stack 0.3's postgres-demo run.yaml, with its ${env...} defaults."""
    backend = {"host": "${env.POSTGRES_HOST:=localhost}", "port": "${env.POSTGRES_PORT:=5432}",
               "db": "${env.POSTGRES_DB:=llamastack}", "user": "${env.POSTGRES_USER:=llamastack}",
               "password": "${env.POSTGRES_PASSWORD:=llamastack}"}
    raw = {
        "storage": {"backends": {"kv_default": {"type": "kv_postgres", **backend, "table_name": "llamastack_kvstore"},
                                 "sql_default": {"type": "sql_postgres", **backend}}},
        "metadata_store": {"namespace": "registry", "backend": "kv_default"},
        "inference_store": {"table_name": "inference_store", "backend": "sql_default"},
        "conversations_store": {"table_name": "openai_conversations", "backend": "sql_default"},
    }
    dsn = dsn_of(parse(raw, env={"POSTGRES_PASSWORD": "1234", "POSTGRES_PORT": "5433"}))
    assert (dsn.hostname, dsn.port, dsn.path, dsn.username, dsn.password) == (
        "localhost", 5433, "/llamastack", "llamastack", "1234")  # an all-digit password stays a string


@pytest.mark.parametrize("section", [
    {"type": "postgres", "host": "db.internal", "port": "6543", "db": "stack", "user": "ls", "password": PASSWORD},
    {"sql_store_config": {"type": "postgres", "host": "db.internal", "port": 6543, "db": "stack", "user": "ls",
                          "password": PASSWORD}, "max_write_queue_size": 100},
])
def test_a_legacy_top_level_inference_store_on_postgres(section: dict[str, Any]) -> None:
    dsn = dsn_of(parse({"inference_store": section}))
    assert (dsn.hostname, dsn.port, dsn.path, unquote(dsn.password)) == ("db.internal", 6543, "/stack", PASSWORD)


def test_defaults_ssl_pool_size_and_a_unix_socket() -> None:
    config = parse({"inference_store": {"type": "postgres", "user": "u", "ssl_mode": "verify-full",
                                        "ca_cert_path": "/etc/ca.pem", "pool_size": 25}})
    dsn = dsn_of(config)
    assert (dsn.hostname, dsn.port, dsn.path, dsn.password) == ("localhost", 5432, "/llamastack", None)
    assert parse_qs(dsn.query) == {"sslmode": ["verify-full"], "sslrootcert": ["/etc/ca.pem"]}
    assert config.storage.pool_size == 25
    socket = dsn_of(parse({"inference_store": {"type": "postgres", "user": "u", "host": "/run/postgresql"}}))
    assert parse_qs(socket.query)["host"] == ["/run/postgresql"]


def test_sqlite_backends_keep_relaystacks_own_file_and_legacy_db_path_is_honoured(
    caplog: pytest.LogCaptureFixture
) -> None:
    config = parse({"storage": {"backends": {"sql_default": {"type": "sql_sqlite", "db_path": "/x/sql_store.db"}},
                                "stores": {"inference": {"backend": "sql_default"}}}})
    assert config.storage.backend == "sqlite" and config.storage.db_path is None
    assert "relaystack keeps its own SQLite file" in caplog.text
    legacy = parse({"inference_store": {"type": "sqlite", "db_path": "/x/inference_store.db"},
                    "metadata_store": {"type": "sqlite", "db_path": "/x/registry.db"}})
    assert str(legacy.storage.db_path) == "/x/inference_store.db"
    assert parse({"metadata_store": {"type": "sqlite", "db_path": "/x/registry.db"}}).storage.db_path is None


def test_the_inference_store_decides_then_responses_then_metadata() -> None:
    backends = {"a": postgres(db="inference"), "b": postgres(db="responses"), "c": postgres(db="metadata")}
    stores: dict[str, Any] = {"metadata": {"backend": "c"}, "responses": {"backend": "b"}}
    assert dsn_of(parse({"storage": {"backends": backends, "stores": stores}})).path == "/responses"
    stores["inference"] = {"backend": "a"}
    assert dsn_of(parse({"storage": {"backends": backends, "stores": stores}})).path == "/inference"
    # no store names one: the one PostgreSQL database the backends point at
    one_db = {"kv": {**postgres(), "type": "kv_postgres"}, "sql": postgres()}
    assert dsn_of(parse({"storage": {"backends": one_db}})).path == "/stack"


def test_explicit_relaystack_keys_win(caplog: pytest.LogCaptureFixture) -> None:
    config = parse({"storage": {"backend": "postgres", "dsn": "postgresql://mine@h/relay",
                                "backends": {"sql_default": postgres()},
                                "stores": {"inference": {"backend": "sql_default"}}}})
    assert config.storage.resolved_dsn({}) == "postgresql://mine@h/relay"
    assert "storage.backends.sql_default is not read" in caplog.text


@pytest.mark.parametrize(("raw", "expected"), [
    ({"storage": {"backends": {"sql_default": postgres()}, "stores": {"inference": {"backend": "sql_pg"}}}},
     "storage.stores.inference uses backend 'sql_pg', which storage.backends does not define (defined: sql_default)"),
    ({"inference_store": {"backend": "sql_default"}},
     "inference_store uses backend 'sql_default', which storage.backends does not define (defined: none)"),
    ({"storage": {"backends": {"r": {"type": "kv_redis", "url": "redis://x"}},
                  "stores": {"inference": {"backend": "r"}}}},
     "storage.backends.r.type is 'kv_redis': relaystack keeps stored completions, responses and registered models in "
     "SQLite (the default) or PostgreSQL"),
    ({"inference_store": {"type": "mongodb", "password": PASSWORD}}, "inference_store.type is 'mongodb'"),
    ({"storage": {"backends": {"s": postgres(user=None)}, "stores": {"inference": {"backend": "s"}}}},
     "storage.backends.s.user is required for a PostgreSQL store"),
    ({"storage": {"backends": {"s": postgres(port=PASSWORD)}, "stores": {"inference": {"backend": "s"}}}},
     "storage.backends.s.port must be a port number (1-65535)"),
    ({"storage": {"backends": {"s": postgres(password=1.5)}, "stores": {"inference": {"backend": "s"}}}},
     "storage.backends.s.password must be a string (quote it in the YAML)"),
    ({"storage": {"backends": {"s": postgres(gss_encmode="require")}, "stores": {"inference": {"backend": "s"}}}},
     "gss_encmode: require is not supported"),
    ({"storage": {"backends": {"s": postgres(ssl_mode="always")}, "stores": {"inference": {"backend": "s"}}}},
     "storage.backends.s.ssl_mode must be one of disable, allow, prefer, require, verify-ca, verify-full"),
    ({"storage": {"backends": {"a": postgres(db="one"), "b": postgres(db="two")}}},
     "PostgreSQL backends for different databases (a, b) and no storage.stores.inference names the one"),
    ({"storage": {"backends": ["sql_default"]}}, "storage.backends must be a mapping"),
    ({"storage": {"backends": {"s": {"host": "h"}}, "stores": {"inference": {"backend": "s"}}}},
     "storage.backends.s has no 'type'"),
])
def test_shapes_that_cannot_map_are_clear_errors(raw: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    assert expected in str(caught.value)
    assert PASSWORD not in str(caught.value) and "pa/ss" not in str(caught.value)


def test_a_misplaced_password_is_not_repeated_by_the_validation_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"storage": {"backend": "postgres", "password": PASSWORD}})
    assert "storage.password" in str(caught.value) and PASSWORD not in str(caught.value)
    with pytest.raises(ConfigError) as still_shown:
        parse({"storage": {"backend": "mysql"}})
    assert "'mysql'" in str(still_shown.value)  # other values are still shown, they help


def test_the_dsn_is_checked_when_resolved_never_quoting_it() -> None:
    config = parse({"storage": {"backend": "postgres", "dsn": f"postgresql://u:{PASSWORD}@h:5432/db"}})
    with pytest.raises(ConfigError) as caught:
        config.storage.resolved_dsn({})
    assert str(caught.value).startswith("storage.dsn cannot be parsed: the part before '@' is cut short. If the "
                                        "user or password contains one of / ? # @ : % or a space, percent-encode it")
    from_env = parse({"storage": {"backend": "postgres"}})
    with pytest.raises(ConfigError, match="RELAYSTACK_POSTGRES_DSN cannot be parsed"):
        from_env.storage.resolved_dsn({"RELAYSTACK_POSTGRES_DSN": "postgresql://u:pa#ss@h/db"})


def test_a_yaml_error_names_the_place_not_the_line(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f'storage:\n  backend: postgres\n  dsn: "postgresql://u:{PASSWORD}@h/db\n  pool_size: [1\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "not valid YAML" in str(caught.value) and "line " in str(caught.value)
    assert PASSWORD not in str(caught.value) and "pa/ss" not in str(caught.value)
