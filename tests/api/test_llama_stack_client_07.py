"""llama-stack-client 0.7.x (the current release) against `relaystack run`.

0.7.x cannot share a venv with the 0.2.x the rest of the suite uses, so scripts/install makes
a small second venv (.venv-lsc07, Python 3.12+); tests/support/lsc07_probe.py runs there,
calls everything a 0.7 user calls that relaystack serves, and reports back as JSON.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_together import DEFAULT_API_KEY
from support.stack import CHAT_MODEL, EMBED_MODEL, Stack

ROOT = Path(__file__).parents[2]
PYTHON = ROOT / ".venv-lsc07" / "bin" / "python"
PROBE = ROOT / "tests" / "support" / "lsc07_probe.py"
CANARY = "tok-lsc07-canary-0123456789abcdef"

pytestmark = pytest.mark.skipif(
    not PYTHON.exists(), reason="no .venv-lsc07 (llama-stack-client 0.7.x): run scripts/install to create it"
)


@pytest.fixture(scope="module")
def probed(together_stack: Stack) -> dict[str, Any]:
    together_stack.fake.reset()
    together_stack.fake.accept_keys(DEFAULT_API_KEY, CANARY)
    try:
        result = subprocess.run([str(PYTHON), str(PROBE), together_stack.base_url, CHAT_MODEL, EMBED_MODEL, CANARY],
                                capture_output=True, text=True, timeout=180, check=False)
    finally:
        together_stack.fake.accept_keys(DEFAULT_API_KEY)
    assert result.returncode == 0, result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout)
    errors = {name: value["error"] for name, value in data.items() if isinstance(value, dict) and "error" in value}
    assert not errors, json.dumps(errors, indent=2)
    data["_keys_seen"] = [r.api_key for r in together_stack.fake.requests]
    return data


def test_the_client_is_0_7(probed: dict[str, Any]) -> None:
    assert probed["client_version"].startswith("0.7.")


def test_models(probed: dict[str, Any]) -> None:
    models = {model_id: (kind, provider) for model_id, kind, provider in probed["models"]}
    assert models[CHAT_MODEL] == ("llm", "together")
    assert models[EMBED_MODEL] == ("embedding", "together")
    assert probed["model"] == CHAT_MODEL


def test_chat_plain_streamed_and_keyed_per_request(probed: dict[str, Any]) -> None:
    chat = probed["chat"]
    assert chat["content"] and chat["finish_reason"] == "stop" and chat["model"] == CHAT_MODEL
    stream = probed["chat_stream"]
    assert stream["text"] and stream["finish_reason"] == "stop" and stream["chunks"] > 2
    assert probed["chat_keyed"]["content"]
    assert CANARY in probed["_keys_seen"]  # the provider_data key reached the upstream


def test_completions_and_embeddings(probed: dict[str, Any]) -> None:
    assert probed["completion"] and probed["completion_stream"]
    assert probed["embeddings"] == [768, 768]


def test_stored_completions(probed: dict[str, Any]) -> None:
    assert probed["chat"]["id"] in probed["stored"]
    assert probed["stored_one"] == probed["chat"]["id"]


def test_routes_health_version_providers(probed: dict[str, Any]) -> None:
    routes = {(method, route) for method, route, _ in probed["routes"]}
    assert ("POST", "/v1/chat/completions") in routes and ("GET", "/v1/inspect/routes") in routes
    assert ("POST", "/v1/responses") in routes and ("POST", "/v1/messages") in routes
    assert probed["routes_v1"] > 0
    assert probed["health"] == "OK" and probed["version"]
    assert "together" in probed["providers"] and probed["provider"] == "remote::together"


def test_the_admin_namespace(probed: dict[str, Any]) -> None:
    assert probed["admin_routes"] > 0 and probed["admin_health"] == "OK" and probed["admin_version"]
    assert "together" in probed["admin_providers"] and probed["admin_provider"] == "together"


def test_a_missing_model_is_a_typed_404(probed: dict[str, Any]) -> None:
    assert probed["missing_model"] == "NotFoundError 404"
