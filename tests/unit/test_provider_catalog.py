"""The catalog as data: every row builds from its sample config into its own named class, types
its known embedding models, and bad config values are one line naming the key."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import yaml
from provider_kit import make

import relaystack.providers.catalog as catalog_module
from relaystack.config import parse_config
from relaystack.envsubst import substitute
from relaystack.errors import ConfigError
from relaystack.providers.catalog import CATALOG, build_provider, provider_class
from relaystack.providers.describe import describe, sample_config
from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.mock import MockResponse, MockUpstream

REMOTE = sorted(t for t, row in CATALOG.items() if row.remote)
CLOUD = {"remote::bedrock": "botocore", "remote::oci": "oci"}
# what a user sets in the environment before using a sample config
SAMPLE_ENV = {
    "AZURE_API_BASE": "https://res.openai.azure.com", "VLLM_URL": "http://gpu:8000/v1",
    "DATABRICKS_HOST": "https://dbc-1.cloud.databricks.com", "VERTEX_AI_PROJECT": "proj",
    "OCI_COMPARTMENT_OCID": "ocid1.compartment.oc1..x", "RUNPOD_URL": "https://api.runpod.ai/v2/e/openai/v1",
    "OPENAI_COMPAT_BASE_URL": "http://h/v1", "OPENAI_API_KEY": "k",
}


@pytest.mark.parametrize("provider_type", REMOTE)
def test_every_remote_row_builds_from_its_sample_config_into_its_named_class(provider_type: str) -> None:
    if provider_type in CLOUD:
        pytest.importorskip(CLOUD[provider_type])
    row = CATALOG[provider_type]
    config = substitute(sample_config(row), SAMPLE_ENV)
    provider = build_provider("p", provider_type, config, MockUpstream(lambda r: MockResponse.json({})))
    assert type(provider).__name__ == row.class_name and provider.provider_type == provider_type
    assert provider_class(row) is type(provider)
    if row.implementation is None:  # a plain row: data only, its class made on the shared base
        assert getattr(catalog_module, row.class_name) is type(provider)
    info = describe(row)
    assert "base_url (url)" in info["config_keys"] and info["summary"]


LISTED = [t for t in REMOTE if CATALOG[t].embedding_models and t not in (
    "remote::azure", "remote::databricks", "remote::together")]


@pytest.mark.parametrize("provider_type", LISTED)
def test_known_embedding_models_of_a_row_are_typed_with_their_dimension(provider_type: str) -> None:
    row = CATALOG[provider_type]
    embedding, metadata = next(iter(row.embedding_models.items()))

    def handler(request: UpstreamRequest) -> MockResponse:
        return MockResponse.json({"object": "list", "data": [{"id": embedding}, {"id": "some-chat-model"}]})

    provider, _ = make(provider_type, {**substitute(sample_config(row), SAMPLE_ENV), "api_key": "k"}, handler)
    import asyncio

    entries = {e.provider_resource_id: e for e in asyncio.run(provider.list_models()) or []}
    assert entries[embedding].model_type == "embedding" and entries[embedding].metadata == dict(metadata)
    assert entries["some-chat-model"].model_type == "llm"


@pytest.mark.parametrize(("config", "expected", "hidden"), [
    ({"api_key": "sk-secret-value-123", "refresh_interval_s": -1},
     "providers.inference[g].config.refresh_interval_s: Input should be greater than 0 (got -1)", None),
    ({"api_key": 12345678901}, "providers.inference[g].config.api_key:", "12345678901"),
    ({"api_key": "k", "tls_verify": ["no"]}, "providers.inference[g].config.tls_verify:", None),
])
def test_a_bad_value_is_one_line_naming_the_key(config: dict[str, object], expected: str, hidden: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        build_provider("g", "remote::groq", config, MockUpstream(lambda r: MockResponse.json({})))
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message
    assert "sk-secret-value-123" not in message and (hidden is None or hidden not in message)


def test_required_keys_are_named_and_unknown_ones_warned(caplog: pytest.LogCaptureFixture) -> None:
    for provider_type, key in (("remote::azure", "api_base"), ("remote::vllm", "base_url"),
                               ("remote::vertexai", "project"), ("remote::databricks", "url")):
        with pytest.raises(ConfigError, match=key):
            build_provider("x", provider_type, {}, MockUpstream(lambda r: MockResponse.json({})))
    with caplog.at_level(logging.WARNING):
        build_provider("x", "remote::groq", {"api_key": "k", "temprature": 1, "network": {}},
                       MockUpstream(lambda r: MockResponse.json({})))
    assert "['temprature']" in caplog.text and "network" not in caplog.text


def test_relaystack_providers_lists_every_type_with_its_config_keys() -> None:
    out = subprocess.run([sys.executable, "-m", "relaystack", "providers"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    for provider_type in CATALOG:
        assert provider_type in out
    assert "api_base, api_version, api_type" in out and "oci_auth_type, oci_region" in out
    assert "project_id, api_version, iam_url" in out and "region_name, aws_access_key_id" in out


def test_relaystack_providers_type_prints_a_run_yaml_entry_that_loads() -> None:
    out = subprocess.run([sys.executable, "-m", "relaystack", "providers", "watsonx"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    config = parse_config(yaml.safe_load(out), env={"WATSONX_API_KEY": "k", "WATSONX_PROJECT_ID": "p"})
    entry = config.inference_providers[0]
    assert entry.provider_type == "remote::watsonx" and entry.config["project_id"] == "p"
    missing = subprocess.run([sys.executable, "-m", "relaystack", "providers", "nope"], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2 and "unknown provider type" in missing.stderr
