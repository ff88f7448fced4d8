"""A relaystack on PostgreSQL that loses it mid-run: 503 store_unavailable (no 500, no hang),
/v1/health says so, and it recovers by itself when PostgreSQL is back. Meanwhile what needs no
store is still served: ``store: false`` requests and the model list."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from cluster_helpers import wait_for

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.backends import throwaway_database
from support.server import RunningServer, start_server, write_config
from support.stack import CHAT_MODEL, issue_config
from support.tcp_proxy import ThreadedTcpProxy


@dataclass
class Outage:
    server: RunningServer
    proxy: ThreadedTcpProxy
    fake: FakeTogether


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    home = tmp_path_factory.mktemp("outage")
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    try:
        with throwaway_database() as dsn:
            parts = urlsplit(dsn)
            proxy = ThreadedTcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
            proxy.start()
            proxied = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
            config = issue_config()
            config["storage"] = {"backend": "postgres", "dsn": "${env.RELAYSTACK_POSTGRES_DSN}"}
            server = start_server(write_config(home / "run.yaml", config), home=home, env={
                "TOGETHER_API_KEY": DEFAULT_API_KEY, "TOGETHER_BASE_URL": fake.base_url,
                "RELAYSTACK_POSTGRES_DSN": proxied})
            try:
                yield Outage(server, proxy, fake)
            finally:
                server.stop()
                proxy.close()
    finally:
        fake.stop()


def ask(server: RunningServer, text: str, **extra: object) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/chat/completions", timeout=30,
                      json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": text}], **extra})


def test_losing_postgres_gives_503s_then_recovers(outage: Outage) -> None:
    server, proxy = outage.server, outage.proxy
    before = ask(server, "before the outage")
    assert before.status_code == 200 and "x-relaystack-store" not in before.headers

    proxy.cut()
    answers = [ask(server, f"during #{i}") for i in range(5)]
    # the request that discovers the outage was already generated: it is answered, marked not stored
    # (withholding it would lose it for good); every later one is refused before the upstream call
    if answers[0].status_code == 200:
        assert answers[0].headers.get("x-relaystack-store") == "failed"
        answers = answers[1:]
    assert all(r.status_code == 503 for r in answers), [r.status_code for r in answers]
    assert {r.json()["error"]["code"] for r in answers} == {"store_unavailable"}
    statuses = answers
    assert statuses[-1].headers.get("retry-after") == "1"
    listed = httpx.get(server.base_url + "/v1/chat/completions", timeout=30)
    assert listed.status_code == 503 and listed.json()["error"]["code"] == "store_unavailable"
    health = httpx.get(server.base_url + "/v1/health", timeout=10).json()
    assert health["store"]["status"] == "unavailable" and health["ready"] is False
    assert ask(server, "not stored", store=False).status_code == 200  # needs no store: still served

    proxy.start()
    assert wait_for(lambda: httpx.get(server.base_url + "/v1/health", timeout=10).json()["store"]["status"] == "OK",
                    20)
    after = ask(server, "after the outage")
    assert after.status_code == 200 and "x-relaystack-store" not in after.headers
    got = httpx.get(f"{server.base_url}/v1/chat/completions/{after.json()['id']}", timeout=10)
    assert got.status_code == 200
    assert "Traceback" not in server.log()


def test_responses_and_models_while_postgres_is_down(outage: Outage) -> None:
    server, proxy, fake = outage.server, outage.proxy, outage.fake
    url = server.base_url
    httpx.post(url + "/v1/models", timeout=30, json={
        "model_id": "registered/one", "provider_id": "together", "provider_model_id": "one"}).raise_for_status()
    first = httpx.post(url + "/v1/responses", timeout=30, json={"model": CHAT_MODEL, "input": "remember me"})
    assert first.status_code == 200 and "x-relaystack-store" not in first.headers
    listed_before = httpx.get(url + "/v1/models", timeout=30).json()["data"]

    proxy.cut()
    try:
        assert wait_for(lambda: httpx.get(url + "/v1/health", timeout=10).json()["store"]["status"] != "OK", 20)
        fake.reset()
        refused = httpx.post(url + "/v1/responses", timeout=30, json={"model": CHAT_MODEL, "input": "kept?"})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "store_unavailable"
        assert fake.requests_to("/v1/chat/completions") == []  # refused before the upstream call
        continued = httpx.post(url + "/v1/responses", timeout=30, json={
            "model": CHAT_MODEL, "input": "and now?", "previous_response_id": first.json()["id"], "store": False})
        assert continued.status_code == 503 and continued.json()["error"]["code"] == "store_unavailable"
        unstored = httpx.post(url + "/v1/responses", timeout=30,
                              json={"model": CHAT_MODEL, "input": "no need to keep", "store": False})
        assert unstored.status_code == 200 and unstored.json()["store"] is False
        models = httpx.get(url + "/v1/models", timeout=30)  # the cached list, not a 503
        assert models.status_code == 200 and models.json()["data"] == listed_before
        assert httpx.get(url + "/v1/models/registered/one", timeout=30).status_code == 200
    finally:
        proxy.start()
    assert wait_for(lambda: httpx.get(url + "/v1/health", timeout=10).json()["store"]["status"] == "OK", 20)
    got = httpx.get(f"{url}/v1/responses/{first.json()['id']}", timeout=30)
    assert got.status_code == 200 and got.json()["output"] == first.json()["output"]
