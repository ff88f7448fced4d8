"""routing: and deployments: in run.yaml: defaults, overrides, and one clear error per bad value."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from relaystack.config import parse_config
from relaystack.errors import ConfigError
from relaystack.router import RouterSettings

PROVIDERS = {"inference": [{"provider_id": p, "provider_type": "remote::openai-compat",
                            "config": {"base_url": "http://127.0.0.1:9/v1"}} for p in ("a", "b")]}


def config(**sections: Any) -> dict[str, Any]:
    return {"providers": PROVIDERS, **sections}


def model(**fields: Any) -> dict[str, Any]:
    return {"model_id": "m", "deployments": [{"provider_id": "a"}, {"provider_id": "b"}], **fields}


def test_model_routing_is_laid_over_the_global_section_key_by_key() -> None:
    run = parse_config(config(
        routing={"retries": 3, "timeouts": {"connect_s": 2, "idle_s": 30}, "cooldown": {"failures": 5}},
        models=[model(routing={"timeouts": {"idle_s": 5}, "strategy": "weighted"})],
    ), env={})
    routing = RouterSettings.from_config(run).for_model("m")
    assert routing is not None
    assert routing.strategy == "weighted" and routing.retries == 3
    assert routing.timeouts.connect_s == 2 and routing.timeouts.idle_s == 5
    assert routing.cooldown.failures == 5 and routing.cooldown.cooldown_s == 30


def test_without_a_routing_section_plain_models_are_not_routed() -> None:
    run = parse_config(config(models=[{"model_id": "x", "provider_id": "a"}, model()]), env={})
    settings = RouterSettings.from_config(run)
    assert settings.default is None and settings.for_model("x") is None
    assert settings.for_model("m") is not None  # a model with deployments gets the defaults


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"strategy": "round-robin"}, "models[0].routing.strategy: Input should be 'priority', 'weighted' or "
                                      "'least-outstanding'"),
        ({"retries": -1}, "models[0].routing.retries"),
        ({"retry_on": [404]}, "404 is never retried"),
        ({"retry_on": ["sometimes"]}, "'sometimes' is not one of connect, timeout, 5xx"),
        ({"timeouts": {"idle_s": 0}}, "models[0].routing.timeouts.idle_s: Input should be greater than 0"),
        ({"cooldown": {"failures": 0}}, "models[0].routing.cooldown.failures"),
        ({"retrys": 2}, "models[0].routing.retrys: Extra inputs are not permitted"),
    ],
)
def test_bad_model_routing_is_one_clear_error(routing: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="invalid routing for model 'm'") as raised:
        parse_config(config(models=[model(routing=routing)]), env={})
    assert message in str(raised.value)


def test_bad_global_routing_names_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(config(routing={"retry_on": [401]}), env={})
    assert "routing.retry_on" in str(raised.value) and "401 is never retried" in str(raised.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"deployments": [{"provider_id": "a"}]}, "needs a model_id"),
        ({"model_id": "m", "provider_id": "a", "deployments": [{"provider_id": "a"}]}, "not both"),
        ({"model_id": "m", "deployments": []}, "deployments is empty"),
        ({"model_id": "m", "deployments": [{"provider_id": "a"}, {"provider_id": "a"}]}, "'a' is used twice"),
        ({"model_id": "m", "deployments": [{"provider_id": "a", "weight": 0}]}, "weight"),
        ({"model_id": "m", "deployments": [{"provider_id": "a", "wieght": 2}]}, "wieght"),
    ],
)
def test_bad_deployments_are_one_clear_error(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(config(models=[entry]), env={})
    assert message in str(raised.value)


def test_a_deployment_on_a_disabled_provider_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        run = parse_config(config(models=[{"model_id": "m", "deployments": [
            {"provider_id": "a"}, {"provider_id": "gone"}]}]), env={})
    assert "provider 'gone'" in caplog.text
    assert run.models[0].deployments is not None


def test_the_example_run_yaml_is_valid() -> None:
    from pathlib import Path

    from relaystack.config import load_config

    run = load_config(Path(__file__).parents[2] / "examples" / "run.yaml")
    assert run.routing is not None
    routed = [m for m in run.models if m.deployments]
    assert routed and all(len(m.deployments or []) >= 2 for m in routed)
