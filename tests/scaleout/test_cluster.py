"""Three relaystack instances behind nginx (scripts/cluster) share one state: what one instance
stored or registered, every instance serves; kill -9 of one instance loses no acknowledged completion.

The kill test runs last in this module: it leaves the cluster with one instance down.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading

import asyncpg
import httpx
from cluster_helpers import Cluster, chat, wait_for

from support.stack import CHAT_MODEL


def test_health_through_nginx_shows_the_store_and_redis(cluster: Cluster) -> None:
    health = httpx.get(cluster.url + "/v1/health", timeout=10).json()
    assert health["store"]["backend"] == "postgres" and health["store"]["status"] == "OK"
    assert health["state"]["backend"] == "redis" and health["state"]["status"] == "OK"
    assert health["ready"] is True
    text = str(health)
    assert "postgres@" not in text and "password" not in text  # the DSN's credentials never show
    status = cluster.run("status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count(" up ") == 3


def test_completions_stored_through_one_instance_are_listed_through_every_other(cluster: Cluster) -> None:
    first, *others = cluster.instance_urls()
    ids = {chat(first, f"stored via one #{i}")["id"] for i in range(3)}
    with httpx.stream("POST", first + "/v1/chat/completions", timeout=30, json={
            "model": CHAT_MODEL, "stream": True, "messages": [{"role": "user", "content": "streamed via one"}]}) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: {")]
    streamed_id = httpx.Response(200, content=lines[0][6:]).json()["id"]
    ids.add(streamed_id)
    for url in others:
        listed = {c["id"] for c in httpx.get(url + "/v1/chat/completions?limit=100", timeout=10).json()["data"]}
        assert ids <= listed
        got = httpx.get(f"{url}/v1/chat/completions/{streamed_id}", timeout=10).json()
        assert got["choices"][0]["finish_reason"] == "stop"
        assert got["input_messages"] == [{"role": "user", "content": "streamed via one"}]


def test_registrations_and_unregistrations_reach_every_instance(cluster: Cluster) -> None:
    one, two, three = cluster.instance_urls()
    registered = httpx.post(two + "/v1/models", timeout=10, json={
        "model_id": "cluster-alias", "provider_id": "together",
        "provider_model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"})
    assert registered.status_code == 200, registered.text

    def listed(url: str) -> set[str]:
        return {m["id"] for m in httpx.get(url + "/v1/models", timeout=10).json()["data"]}

    assert wait_for(lambda: all("cluster-alias" in listed(u) for u in (one, three)), 10)
    assert chat(three, "through the alias", model="cluster-alias")["model"] == "cluster-alias"
    assert httpx.delete(one + "/v1/models/cluster-alias", timeout=10).status_code == 200
    assert wait_for(lambda: all("cluster-alias" not in listed(u) for u in (two, three)), 10)


def test_kill_9_of_one_instance_mid_load_loses_no_acknowledged_completion(cluster: Cluster) -> None:
    victim = cluster.status()["instances"][1]
    acked: list[str] = []
    failed: list[str] = []
    stop = threading.Event()
    counter = itertools.count()
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=cluster.url, timeout=30) as client:
            while not stop.is_set():
                n = next(counter)
                try:
                    response = client.post("/v1/chat/completions", json={
                        "model": CHAT_MODEL, "messages": [{"role": "user", "content": f"load #{n}"}]})
                except httpx.HTTPError as exc:
                    with lock:
                        failed.append(type(exc).__name__)
                    continue
                with lock:
                    # acknowledged: a 200 whose completion the server says it stored
                    if response.status_code == 200 and response.headers.get("x-relaystack-store") != "failed":
                        acked.append(response.json()["id"])
                    else:
                        failed.append(str(response.status_code))

    threads = [threading.Thread(target=client_loop) for _ in range(16)]
    for thread in threads:
        thread.start()
    try:
        assert wait_for(lambda: len(acked) >= 150, 120)
        os.kill(victim["pid"], signal.SIGKILL)
        killed_at = len(acked)
        assert wait_for(lambda: len(acked) >= killed_at + 150, 120)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    stored = asyncio.run(_stored_ids(cluster.dsn))
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged completions lost, e.g. {sorted(missing)[:3]}"
    print(f"acknowledged {len(acked)}, failed {len(failed)} ({sorted(set(failed))}) around the kill")
    status = cluster.status()
    alive = [i["alive"] for i in status["instances"]]
    assert alive == [True, False, True]
    # every listed row is readable through the survivors
    survivor = cluster.instance_urls()[2]
    some = acked[killed_at - 5: killed_at + 5]
    for cid in some:
        assert httpx.get(f"{survivor}/v1/chat/completions/{cid}", timeout=10).status_code == 200


async def _stored_ids(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {row[0] for row in await conn.fetch("SELECT id FROM chat_completions")}
    finally:
        await conn.close()


