"""`relaystack run --workers 2`: the worker processes share registrations and stored completions."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.server import start_server, write_config
from support.stack import CHAT_MODEL, issue_config


def test_two_workers_share_the_store(tmp_path: Path) -> None:
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    try:
        config = write_config(tmp_path / "run.yaml", issue_config(api_key=DEFAULT_API_KEY, base_url=fake.base_url))
        server = start_server(config, home=tmp_path, args=["--workers", "2"])
        try:
            registered = httpx.post(f"{server.base_url}/v1/models", json={
                "model_id": "shared-alias", "provider_id": "together",
                "provider_model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"})
            assert registered.status_code == 200, registered.text
            ids = set()
            for i in range(6):
                # a fresh connection each time, so both workers answer some of them
                response = httpx.post(f"{server.base_url}/v1/chat/completions", headers={"Connection": "close"},
                                      json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": f"#{i}"}]})
                ids.add(response.json()["id"])
            time.sleep(1.5)  # registrations propagate to the other worker within about a second
            for _ in range(12):
                with httpx.Client() as client:
                    listed = [m["id"] for m in client.get(f"{server.base_url}/v1/models").json()["data"]]
                    assert "shared-alias" in listed
                    stored = {c["id"] for c in client.get(f"{server.base_url}/v1/chat/completions?limit=100")
                              .json()["data"]}
                    assert ids <= stored
            pids = {line.split("[")[1].split("]")[0] for line in server.log().splitlines()
                    if "Started server process" in line}
            assert len(pids) == 2
        finally:
            server.stop()
    finally:
        fake.stop()
