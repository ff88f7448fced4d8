"""A relaystack on PostgreSQL that loses it mid-run: 503 store_unavailable (no 500, no hang),
/v1/health says so, and it recovers by itself when PostgreSQL is back."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from cluster_helpers import wait_for

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.backends import throwaway_database
from support.server import RunningServer, start_server, write_config
from support.stack import CHAT_MODEL, issue_config
from support.tcp_proxy import ThreadedTcpProxy


@pytest.fixture(scope="module")
def server_behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, ThreadedTcpProxy]]:
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
                yield server, proxy
            finally:
                server.stop()
                proxy.close()
    finally:
        fake.stop()


def ask(server: RunningServer, text: str, **extra: object) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/chat/completions", timeout=30,
                      json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": text}], **extra})


def test_losing_postgres_gives_503s_then_recovers(server_behind_proxy: tuple[RunningServer, ThreadedTcpProxy]) -> None:
    server, proxy = server_behind_proxy
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
