"""run.yaml: llama-stack's substitution rules, disabled providers, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from relaystack.config import load_config, parse_config
from relaystack.envsubst import substitute
from relaystack.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${env.X}", {"X": "v"}, "v"),
        ("${env.X:=dflt}", {}, "dflt"),
        ("${env.X:=dflt}", {"X": ""}, "dflt"),
        ("${env.X:=}", {}, None),
        ("${env.X:+on}", {"X": "1"}, "on"),
        ("${env.X:+on}", {}, None),
        ("${env.P:=8321}", {}, 8321),
        ("${env.B:=true}", {}, True),
        ("${env.F:=0.5}", {}, 0.5),
        ("http://${env.H:=localhost}:${env.PORT:=80}/v1", {"PORT": "9"}, "http://localhost:9/v1"),
        ("no substitution: 123", {}, "no substitution: 123"),
    ],
)
def test_substitution(text: str, env: dict[str, str], expected: object) -> None:
    assert substitute(text, env) == expected


def test_unset_required_variable_names_the_path_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"'KEY' not set or empty at providers\.inference\[0\]\.config\.api_key"):
        substitute({"providers": {"inference": [{"provider_id": "p", "config": {"api_key": "${env.KEY}"}}]}}, {})


def test_empty_provider_id_disables_the_provider_without_expanding_it() -> None:
    raw = {"providers": {"inference": [
        {"provider_id": "${env.NOPE:+x}", "provider_type": "remote::openai", "config": {"api_key": "${env.MUST}"}},
        {"provider_id": "t", "provider_type": "remote::together", "config": {}},
    ]}}
    config = parse_config(raw, env={})
    assert [p.provider_id for p in config.inference_providers] == ["t"]


def test_unserved_sections_warn_not_crash(caplog: pytest.LogCaptureFixture) -> None:
    raw = {"apis": ["inference", "agents"], "vector_dbs": [{"x": 1}],
           "providers": {"inference": [], "safety": [{"provider_id": "s", "provider_type": "inline::llama-guard"}]}}
    with caplog.at_level(logging.WARNING):
        parse_config(raw, env={})
    text = caplog.text
    assert "vector_dbs" in text and "providers.safety" in text and "agents" in text


def test_malformed_config_names_file_key_and_expectation(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("version: 2\nserver:\n  port: not-a-port\nproviders:\n  inference: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and "server.port" in message and "integer" in message


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_embedding_model_needs_a_dimension() -> None:
    raw = {"providers": {"inference": [{"provider_id": "t", "provider_type": "remote::together"}]},
           "models": [{"model_id": "e", "provider_id": "t", "model_type": "embedding"}]}
    with pytest.raises(ConfigError, match="embedding_dimension"):
        parse_config(raw, env={})


def test_llama_stack_inference_store_path_is_read(tmp_path: Path) -> None:
    raw = {"inference_store": {"type": "sqlite", "db_path": str(tmp_path / "store.db")}, "providers": {}}
    assert parse_config(raw, env={}).storage.resolved_db_path() == tmp_path / "store.db"


def test_the_example_config_loads(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "run.yaml"
    config = load_config(example)
    assert [p.provider_type for p in config.inference_providers] == ["remote::together"]
    assert config.models[1].metadata == {"embedding_dimension": 768}


def test_the_server_limits_have_safe_defaults_and_bad_values_name_the_key() -> None:
    from relaystack.server.runner import connection_limits, uvicorn_settings

    server = parse_config({"providers": {}}, env={}).server
    # every limit a public server needs is on without being configured
    limits = connection_limits(server)
    assert (limits.max_header_bytes, limits.header_timeout_s) == (32 * 1024, 10.0)
    assert (limits.max_connections, limits.max_concurrent_requests) == (2048, 1024)
    assert (server.max_body_bytes, server.body_timeout_s) == (16 * 1024 * 1024, 30.0)
    assert uvicorn_settings(server, "info")["timeout_keep_alive"] == server.keepalive_timeout_s == 5.0
    # and each is read from server: in run.yaml
    configured = parse_config({"providers": {}, "server": {
        "max_header_bytes": 4096, "header_timeout_s": 2, "keepalive_timeout_s": 3, "max_connections": 10,
        "max_concurrent_requests": 5}}, env={}).server
    assert connection_limits(configured) == type(limits)(4096, 2.0, 10, 5)
    assert uvicorn_settings(configured, "info")["timeout_keep_alive"] == 3.0
    for key, value in (("max_header_bytes", 10), ("header_timeout_s", 0), ("keepalive_timeout_s", -1),
                       ("max_connections", 0), ("max_concurrent_requests", 0), ("body_timeout_s", 0),
                       ("max_header_bytes", "lots")):
        with pytest.raises(ConfigError) as caught:
            parse_config({"providers": {}, "server": {key: value}}, env={})
        assert f"server.{key}" in str(caught.value), (key, value)
def test_a_misspelt_server_key_is_warned_about_with_the_nearest_known_one(caplog: pytest.LogCaptureFixture) -> None:
    raw = {"server": {"port": 8400, "max_concurent_requests": 5, "disable_ipv6": True}}
    with caplog.at_level(logging.WARNING, logger="relaystack"):
        config = parse_config(raw, source="run.yaml")
    assert config.server.max_concurrent_requests == 1024  # the typo changed nothing...
    warnings = [r.getMessage() for r in caplog.records]
    # ...and says so, naming the key it probably meant
    assert any("server.max_concurent_requests is not a relaystack setting" in w
               and "Did you mean server.max_concurrent_requests?" in w for w in warnings), warnings
    assert any("server.disable_ipv6 (llama-stack) has no effect" in w for w in warnings), warnings
    assert not any("server.port" in w for w in warnings)
