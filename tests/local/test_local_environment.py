"""RELAYSTACK_PRELOAD and RELAYSTACK_THREADS, as the README promises, through `relaystack run`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from localmodels import LOCAL

from support.server import RunningServer, start_server

pytestmark = LOCAL

MODELS = ("local/smollm2-135m-instruct", "local/all-MiniLM-L6-v2")


def model_states(server: RunningServer) -> dict[str, Any]:
    providers = httpx.get(f"{server.base_url}/v1/health").json()["providers"]
    return {model: state for p in providers.values() for model, state in p["models"].items()}


def test_preload_loads_both_models_at_start_up_with_the_threads_asked(tmp_path: Path) -> None:
    server = start_server(None, home=tmp_path, env={"RELAYSTACK_PRELOAD": "true", "RELAYSTACK_THREADS": "2"},
                          timeout_s=180)
    try:
        deadline = time.monotonic() + 120
        while set(model_states(server).values()) != {"ready"} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert model_states(server) == dict.fromkeys(MODELS, "ready")  # no request was made
        log = server.log()
        assert "n_ctx 2048, 2 thread(s)" in log and "BLAS pinned to 2 thread(s)" in log, log
        configs = {p["provider_id"]: p["config"] for p in httpx.get(f"{server.base_url}/v1/providers").json()["data"]}
        assert configs["local"]["n_threads"] == 2 and configs["local-embeddings"]["n_threads"] == 2
    finally:
        server.stop()


def test_without_preload_models_load_on_first_use(tmp_path: Path) -> None:
    server = start_server(None, home=tmp_path)
    try:
        time.sleep(1.0)
        assert model_states(server) == dict.fromkeys(MODELS, "not_loaded")
        embedded = httpx.post(f"{server.base_url}/v1/embeddings", timeout=120,
                              json={"model": MODELS[1], "input": "hello"})
        assert embedded.status_code == 200
        assert model_states(server)[MODELS[1]] == "ready" and model_states(server)[MODELS[0]] == "not_loaded"
        assert "BLAS pinned to 1 thread(s)" in server.log()
    finally:
        server.stop()
