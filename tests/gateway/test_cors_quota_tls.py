"""server.cors (llama-stack's shape), server.quota (llama-stack's per-day requests) and server.tls_*."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_helpers import PROVIDER_KEY, GatewayStack, bearer, chat, start_gateway

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.server import free_port, start_server, write_config
from support.stack import issue_config

ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def cors_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    fake = FakeTogether((PROVIDER_KEY,)).start()
    stack = start_gateway(tmp_path_factory.mktemp("cors"), fake, cors={
        "allow_origins": [ORIGIN], "allow_methods": ["GET", "POST"],
        "allow_headers": ["Authorization", "Content-Type"], "expose_headers": ["x-ratelimit-remaining-requests"],
    })
    try:
        yield stack
    finally:
        stack.server.stop()
        fake.stop()


def test_a_preflight_needs_no_key_and_names_what_is_allowed(cors_gateway: GatewayStack) -> None:
    response = httpx.options(cors_gateway.base_url + "/v1/chat/completions", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    refused = httpx.options(cors_gateway.base_url + "/v1/chat/completions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


def test_answers_carry_cors_headers_errors_included(cors_gateway: GatewayStack) -> None:
    _, key = cors_gateway.create_key(limits={"rpm": 100})
    ok = httpx.post(cors_gateway.base_url + "/v1/chat/completions", json=chat(),
                    headers={"Origin": ORIGIN, **bearer(key)})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    assert "x-ratelimit-remaining-requests" in ok.headers["access-control-expose-headers"]
    unauthorized = httpx.post(cors_gateway.base_url + "/v1/chat/completions", json=chat(), headers={"Origin": ORIGIN})
    assert unauthorized.status_code == 401 and unauthorized.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.post(cors_gateway.base_url + "/v1/chat/completions", json=chat(),
                       headers={"Origin": "https://evil.example", **bearer(key)})
    assert "access-control-allow-origin" not in other.headers


def test_cors_is_off_by_default(gateway: GatewayStack) -> None:
    response = httpx.options(gateway.base_url + "/v1/chat/completions",
                             headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers


def test_llama_stack_quota_limits_anonymous_clients_per_day(tmp_path: Path) -> None:
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    config = issue_config(api_key=DEFAULT_API_KEY, base_url=fake.base_url)
    config["server"]["quota"] = {"kvstore": {"type": "sqlite", "db_path": str(tmp_path / "q.db")},
                                 "anonymous_max_requests": 3, "authenticated_max_requests": 100, "period": "day"}
    server = start_server(write_config(tmp_path / "run.yaml", config), home=tmp_path)
    try:
        statuses = [httpx.post(server.base_url + "/v1/chat/completions", json=chat()).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        refused = httpx.post(server.base_url + "/v1/chat/completions", json=chat())
        assert "3 requests per day" in refused.json()["error"]["message"] and int(refused.headers["retry-after"]) > 60
        assert httpx.get(server.base_url + "/v1/models").status_code == 200  # auth stays off
    finally:
        server.stop()
        fake.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_files_serve_https(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    config = write_config(tmp_path / "run.yaml", {"version": 2, "providers": {"inference": []},
                                                 "server": {"tls_certfile": str(cert), "tls_keyfile": str(key)}})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYSTACK_")} | {"RELAYSTACK_HOME": str(tmp_path)}
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "relaystack", "run", str(config), "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline, answer = time.monotonic() + 90, None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = httpx.get(f"https://127.0.0.1:{port}/v1/version", verify=str(cert), timeout=2)
            except httpx.HTTPError:
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/v1/version", timeout=2)
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
