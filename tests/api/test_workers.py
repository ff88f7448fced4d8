"""`relaystack run --workers 2`: both worker processes serve, and they share registrations and
stored completions."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.server import RunningServer, start_server, write_config
from support.stack import CHAT_MODEL, issue_config


def _access_lines(server: RunningServer) -> list[dict[str, object]]:
    lines = [orjson.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "relaystack.access"]


def _chat_pids(server: RunningServer) -> set[object]:
    return {line["pid"] for line in _access_lines(server) if line["path"] == "/v1/chat/completions"}


def test_two_workers_serve_and_share_the_store(tmp_path: Path) -> None:
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    try:
        config = write_config(tmp_path / "run.yaml", issue_config(api_key=DEFAULT_API_KEY, base_url=fake.base_url))
        server = start_server(config, home=tmp_path, args=["--workers", "2", "--log-format", "json"])
        try:
            registered = httpx.post(f"{server.base_url}/v1/models", json={
                "model_id": "shared-alias", "provider_id": "together",
                "provider_model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"})
            assert registered.status_code == 200, registered.text
            ids = set()
            deadline = time.monotonic() + 60
            # a fresh connection each time: the kernel hands them to either worker; go on until
            # the access log shows both processes answered (usually within a few requests)
            while len(ids) < 6 or (len(_chat_pids(server)) < 2 and time.monotonic() < deadline):
                response = httpx.post(f"{server.base_url}/v1/chat/completions", headers={"Connection": "close"},
                                      json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]})
                assert response.status_code == 200, response.text
                ids.add(response.json()["id"])
            assert len(_chat_pids(server)) == 2, "one worker served every request"
            time.sleep(1.5)  # registrations propagate to the other worker within about a second
            for _ in range(12):
                with httpx.Client() as client:
                    listed = [m["id"] for m in client.get(f"{server.base_url}/v1/models").json()["data"]]
                    assert "shared-alias" in listed
                    stored = {c["id"] for c in client.get(f"{server.base_url}/v1/chat/completions?limit=1000")
                              .json()["data"]}
                    assert ids <= stored
            served_admin = {line["pid"] for line in _access_lines(server) if line["path"] == "/v1/models"}
            assert served_admin, "admin requests are in the access log too"
        finally:
            server.stop()
    finally:
        fake.stop()
