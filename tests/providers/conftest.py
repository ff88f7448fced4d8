"""One fake server playing every cloud, and one ``relaystack run`` with a llama-stack-style
run.yaml naming every remote provider type (keys from the environment, as llama-stack does)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("botocore", reason="the cloud extra (botocore, google-auth, oci) is not installed")
pytest.importorskip("oci", reason="the cloud extra (botocore, google-auth, oci) is not installed")
pytest.importorskip("google.auth", reason="the cloud extra (botocore, google-auth, oci) is not installed")

from fakes.cloud_creds import CloudCreds
from fakes.fake_clouds import FakeClouds
from support.server import RunningServer, start_server, write_config

# provider_id -> the fake personality it talks to
PERSONALITY = {
    "openai": "openai", "azure": "azure", "anthropic": "anthropic", "gemini": "gemini", "gemini-oauth": "gemini",
    "vertexai": "vertexai", "bedrock": "bedrock", "cerebras": "cerebras", "databricks": "databricks",
    "fireworks": "fireworks", "groq": "groq", "llama-openai-compat": "llama-openai-compat",
    "llama-cpp-server": "llama-cpp-server", "nvidia": "nvidia", "oci": "oci", "runpod": "runpod",
    "sambanova": "sambanova", "vllm": "vllm", "watsonx": "watsonx", "openai-compat": "openai-compat",
}
# the environment variable each keyed provider reads its key from in the run.yaml
KEY_ENV = {
    "openai": "OPENAI_API_KEY", "azure": "AZURE_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY", "cerebras": "CEREBRAS_API_KEY", "databricks": "DATABRICKS_TOKEN",
    "fireworks": "FIREWORKS_API_KEY", "groq": "GROQ_API_KEY", "llama-openai-compat": "LLAMA_API_KEY",
    "runpod": "RUNPOD_API_TOKEN", "sambanova": "SAMBANOVA_API_KEY", "watsonx": "WATSONX_API_KEY",
    "bedrock": "AWS_SECRET_ACCESS_KEY",
}


def llama_stack_run_yaml(fake: FakeClouds, creds: CloudCreds, home: Path) -> dict[str, Any]:
    """A run.yaml as a llama-stack user writes it: llama-stack's config keys, secrets from ${env.X}."""
    oci_config = creds.write_oci_config(home)
    root = fake.root

    def entry(provider_id: str, provider_type: str, **config: Any) -> dict[str, Any]:
        return {"provider_id": provider_id, "provider_type": provider_type, "config": config}

    providers = [
        entry("openai", "remote::openai", api_key="${env.OPENAI_API_KEY:=}", base_url=fake.base("openai")),
        entry("azure", "remote::azure", api_key="${env.AZURE_API_KEY:=}", api_base=f"{root}/azure",
              api_version="${env.AZURE_API_VERSION:=}", api_type="${env.AZURE_API_TYPE:=}"),
        entry("anthropic", "remote::anthropic", api_key="${env.ANTHROPIC_API_KEY:=}", base_url=fake.base("anthropic")),
        entry("gemini", "remote::gemini", api_key="${env.GEMINI_API_KEY:=}", base_url=fake.base("gemini")),
        entry("gemini-oauth", "remote::gemini", project=creds.google_project, base_url=fake.base("gemini")),
        entry("vertexai", "remote::vertexai", project=creds.google_project, location="us-central1",
              base_url=fake.base("vertexai")),
        entry("bedrock", "remote::bedrock", api_key="${env.AWS_BEARER_TOKEN_BEDROCK:=}", region_name="us-east-2",
              base_url=fake.base("bedrock"), aws_access_key_id=creds.aws_access_key,
              aws_secret_access_key="${env.AWS_SECRET_ACCESS_KEY:=}"),
        entry("cerebras", "remote::cerebras", api_key="${env.CEREBRAS_API_KEY:=}", base_url=fake.base("cerebras")),
        entry("databricks", "remote::databricks", url=f"{root}/databricks", api_token="${env.DATABRICKS_TOKEN:=}"),
        entry("fireworks", "remote::fireworks", api_key="${env.FIREWORKS_API_KEY:=}", base_url=fake.base("fireworks")),
        entry("groq", "remote::groq", api_key="${env.GROQ_API_KEY:=}", url=fake.base("groq")),
        entry("llama-openai-compat", "remote::llama-openai-compat", api_key="${env.LLAMA_API_KEY:=}",
              base_url=fake.base("llama-openai-compat")),
        entry("llama-cpp-server", "remote::llama-cpp-server", base_url=fake.base("llama-cpp-server")),
        entry("nvidia", "remote::nvidia", url=f"{root}/nvidia", api_key="${env.NVIDIA_API_KEY:=}",
              append_api_version="${env.NVIDIA_APPEND_API_VERSION:=True}"),
        entry("oci", "remote::oci", oci_auth_type="config_file", oci_config_file_path=str(oci_config),
              oci_config_profile="DEFAULT", oci_region="us-chicago-1", oci_compartment_id=creds.oci_compartment,
              base_url=fake.base("oci")),
        entry("runpod", "remote::runpod", url=fake.base("runpod"), api_token="${env.RUNPOD_API_TOKEN:=}"),
        entry("sambanova", "remote::sambanova", api_key="${env.SAMBANOVA_API_KEY:=}", base_url=fake.base("sambanova")),
        entry("vllm", "remote::vllm", url=fake.base("vllm"), max_tokens="${env.VLLM_MAX_TOKENS:=4096}",
              api_token="${env.VLLM_API_TOKEN:=}", tls_verify="${env.VLLM_TLS_VERIFY:=true}"),
        entry("watsonx", "remote::watsonx", url=fake.base("watsonx"), api_key="${env.WATSONX_API_KEY:=}",
              project_id="${env.WATSONX_PROJECT_ID:=wx-project-1}", iam_url=f"{root}/iam/identity/token"),
        entry("openai-compat", "remote::openai-compat", base_url=fake.base("openai-compat")),
        # disabled the llama-stack way: an empty provider_id
        entry("${env.TOGETHER_API_KEY:+together}", "remote::together", api_key="${env.TOGETHER_API_KEY:=}"),
    ]
    return {
        "version": 2, "image_name": "starter", "apis": ["inference", "models"],
        "providers": {"inference": providers},
        # embedding models a provider cannot type by itself (no dimension in its listing): declared
        "models": [
            {"model_id": "llama-cpp-server/nomic-embed", "provider_id": "llama-cpp-server",
             "provider_model_id": "nomic-embed", "model_type": "embedding", "metadata": {"embedding_dimension": 768}},
            {"model_id": "runpod/my-embed-model", "provider_id": "runpod", "provider_model_id": "my-embed-model",
             "model_type": "embedding", "metadata": {"embedding_dimension": 256}},
        ],
        "storage": {"dir": str(home / "store")}, "server": {"port": 8321},
    }


def server_env(creds: CloudCreds, google_credentials: Path) -> dict[str, str]:
    env = {var: creds.key(PERSONALITY[pid]) for pid, var in KEY_ENV.items() if pid != "bedrock"}
    env["AWS_SECRET_ACCESS_KEY"] = creds.aws_secret_key
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(google_credentials)
    return env


@dataclass
class Clouds:
    fake: FakeClouds
    creds: CloudCreds
    server: RunningServer
    home: Path

    @property
    def base_url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="session")
def cloud_creds() -> CloudCreds:
    return CloudCreds()


@pytest.fixture(scope="session")
def fake_clouds(cloud_creds: CloudCreds) -> Iterator[FakeClouds]:
    fake = FakeClouds(cloud_creds).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def clouds(fake_clouds: FakeClouds, cloud_creds: CloudCreds,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clouds]:
    home = tmp_path_factory.mktemp("clouds")
    config = write_config(home / "run.yaml", llama_stack_run_yaml(fake_clouds, cloud_creds, home))
    google = cloud_creds.write_google_service_account(home, fake_clouds.root + "/google/token")
    server = start_server(config, home=home, env=server_env(cloud_creds, google), timeout_s=120)
    try:
        yield Clouds(fake_clouds, cloud_creds, server, home)
    finally:
        server.stop()
