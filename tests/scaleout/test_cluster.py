"""Three relaystack instances behind nginx (scripts/cluster) share one state: what one instance
stored or registered, every instance serves; a rate limit holds across them; a key revoked or a
deployment cooled down through one is refused or skipped by all; kill -9 of one instance loses no
acknowledged completion.

The kill test runs last in this module: it leaves the cluster with one instance down.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time

import asyncpg
import httpx
from cluster_helpers import ADMIN, ROUTED_MODEL, Cluster, chat, wait_for

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
    with httpx.stream("POST", first + "/v1/chat/completions", headers=ADMIN, timeout=30, json={
            "model": CHAT_MODEL, "stream": True, "messages": [{"role": "user", "content": "streamed via one"}]}) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: {")]
    streamed_id = httpx.Response(200, content=lines[0][6:]).json()["id"]
    ids.add(streamed_id)
    for url in others:
        page = httpx.get(url + "/v1/chat/completions?limit=100", headers=ADMIN, timeout=10).json()
        listed = {c["id"] for c in page["data"]}
        assert ids <= listed
        got = httpx.get(f"{url}/v1/chat/completions/{streamed_id}", headers=ADMIN, timeout=10).json()
        assert got["choices"][0]["finish_reason"] == "stop"
        assert got["input_messages"] == [{"role": "user", "content": "streamed via one"}]


def test_a_conversation_through_nginx_continues_whichever_instance_answers(cluster: Cluster) -> None:
    """Round-robin puts each turn on another instance: each must find the previous turn stored."""
    previous: str | None = None
    for turn in ("My name is Ada", "I live in Paris", "Where do I live?"):
        answered = httpx.post(cluster.url + "/v1/responses", headers=ADMIN, timeout=30, json={
            "model": CHAT_MODEL, "input": turn, **({"previous_response_id": previous} if previous else {})})
        assert answered.status_code == 200, answered.text
        previous = answered.json()["id"]
    for url in cluster.instance_urls():
        items = httpx.get(f"{url}/v1/responses/{previous}/input_items?order=asc", headers=ADMIN,
                          timeout=10).json()["data"]
        assert [i.get("role") for i in items] == ["user", "assistant", "user", "assistant", "user"]
        assert items[0]["content"][0]["text"] == "My name is Ada"


def test_registrations_and_unregistrations_reach_every_instance(cluster: Cluster) -> None:
    one, two, three = cluster.instance_urls()
    registered = httpx.post(two + "/v1/models", headers=ADMIN, timeout=10, json={
        "model_id": "cluster-alias", "provider_id": "together",
        "provider_model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free"})
    assert registered.status_code == 200, registered.text

    def listed(url: str) -> set[str]:
        return {m["id"] for m in httpx.get(url + "/v1/models", headers=ADMIN, timeout=10).json()["data"]}

    assert wait_for(lambda: all("cluster-alias" in listed(u) for u in (one, three)), 10)
    assert chat(three, "through the alias", model="cluster-alias")["model"] == "cluster-alias"
    assert httpx.delete(one + "/v1/models/cluster-alias", headers=ADMIN, timeout=10).status_code == 200
    assert wait_for(lambda: all("cluster-alias" not in listed(u) for u in (two, three)), 10)


def create_key(url: str, **fields: object) -> tuple[str, str]:
    created = httpx.post(url + "/v1/admin/keys", headers=ADMIN, json=fields, timeout=10)
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["key"]


async def _spread(urls: list[str], key: str, count: int) -> list[int]:
    """``count`` requests at once, request i to instance i % 3 (not through nginx: spread for sure)."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        responses = await asyncio.gather(*(
            client.post(urls[i % len(urls)] + "/v1/chat/completions",
                        json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": f"burst #{i}"}]})
            for i in range(count)
        ))
    return [r.status_code for r in responses]


def test_200_requests_spread_over_3_instances_against_rpm_50_admit_50(cluster: Cluster) -> None:
    urls = cluster.instance_urls()
    _, key = create_key(urls[0], limits={"rpm": 50})
    statuses = asyncio.run(_spread(urls, key, 200))
    admitted = statuses.count(200)
    assert 49 <= admitted <= 51, sorted(set(statuses))
    assert statuses.count(429) == 200 - admitted
    print(f"admitted {admitted} of 200 spread over {len(urls)} instances (rpm 50)")


def test_a_key_revoked_through_one_instance_is_refused_by_all_within_a_second(cluster: Cluster) -> None:
    urls = cluster.instance_urls()
    key_id, key = create_key(urls[0])
    bearer = {"Authorization": f"Bearer {key}"}
    for url in urls:  # every instance validated (and cached) the key
        chat(url, "before the revocation", headers=bearer)
    revoked = httpx.delete(f"{urls[1]}/v1/admin/keys/{key_id}", headers=ADMIN, timeout=10)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    since = time.monotonic()
    refused_after: dict[str, float] = {}
    with httpx.Client(timeout=10, headers=bearer) as client:
        while len(refused_after) < len(urls) and time.monotonic() - since < 5:
            for url in urls:
                if url in refused_after:
                    continue
                answer = client.post(url + "/v1/chat/completions", json={
                    "model": CHAT_MODEL, "messages": [{"role": "user", "content": "after"}]})
                if answer.status_code == 401:
                    assert answer.json()["error"]["code"] == "key_revoked"
                    refused_after[url] = time.monotonic() - since
                else:
                    assert answer.status_code == 200
    print("refused after", {u[-5:]: f"{t * 1000:.0f} ms" for u, t in refused_after.items()})
    assert set(refused_after) == set(urls)
    assert max(refused_after.values()) < 1.0
    # the key, the admin key and the secret keys are hashed with (made once by scripts/cluster) show nowhere
    secret_file = cluster.directory / "key-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret = secret_file.read_text().strip()
    logs = "".join(p.read_text(errors="replace") for p in cluster.directory.glob("*.log"))
    assert "rsk-" in key and key not in logs and ADMIN["Authorization"][7:] not in logs and secret not in logs


def test_a_deployment_cooled_down_on_one_instance_is_skipped_by_the_others(cluster: Cluster) -> None:
    one, two, three = cluster.instance_urls()

    def routed(url: str) -> httpx.Response:
        answer = httpx.post(url + "/v1/chat/completions", headers=ADMIN, timeout=30, json={
            "model": ROUTED_MODEL, "messages": [{"role": "user", "content": "routed"}]})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-relaystack-deployment"] == "together"
        return answer

    def state_of_broken(url: str) -> str:
        health = httpx.get(url + "/v1/health", timeout=10).json()
        return str(health["deployments"][ROUTED_MODEL]["broken"]["state"])

    assert all(state_of_broken(url) == "healthy" for url in (one, two, three))
    first = routed(one)  # "broken" refused it: cooled down, and the answer came from "together"
    assert first.headers["x-relaystack-attempts"] == "2"
    assert wait_for(lambda: state_of_broken(two) == state_of_broken(three) == "cooling_down", 1.0)
    for url in (two, three, two, three):
        assert routed(url).headers["x-relaystack-attempts"] == "1"  # "broken" skipped, not tried


def test_kill_9_of_one_instance_mid_load_loses_no_acknowledged_completion(cluster: Cluster) -> None:
    victim = cluster.status()["instances"][1]
    acked: list[str] = []
    failed: list[str] = []
    stop = threading.Event()
    counter = itertools.count()
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=cluster.url, timeout=30, headers=ADMIN) as client:
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
        assert httpx.get(f"{survivor}/v1/chat/completions/{cid}", headers=ADMIN, timeout=10).status_code == 200


async def _stored_ids(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {row[0] for row in await conn.fetch("SELECT id FROM chat_completions")}
    finally:
        await conn.close()


