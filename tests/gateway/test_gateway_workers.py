"""`relaystack run --workers 2` with server.auth: limits, revocations and metrics hold across workers."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_helpers import PROVIDER_KEY, GatewayStack, bearer, chat, start_gateway
from prometheus_client.mmap_dict import MmapedDict

from fakes.fake_together import FakeTogether
from support.waiting import clear_of_window_edge

CHAT_200 = r'relaystack_requests_total\{[^}]*route="/v1/chat/completions"[^}]*status="200"[^}]*\} (\S+)'


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayStack, Path]]:
    home = tmp_path_factory.mktemp("gateway-workers")
    metrics_dir = home / "metrics"
    metrics_dir.mkdir()
    fake = FakeTogether((PROVIDER_KEY,)).start()
    stack = start_gateway(home, fake, args=("--workers", "2"), env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    try:
        yield stack, metrics_dir
    finally:
        stack.server.stop()
        fake.stop()


async def _burst(base_url: str, key: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        responses = await asyncio.gather(*(
            client.post("/v1/chat/completions", headers=bearer(key), json=chat(text=f"#{i}")) for i in range(count)
        ))
    return [r.status_code for r in responses]


def _pids_that_served_chat(metrics_dir: Path) -> set[str]:
    pids = set()
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            name, _sample, labels, _help = json.loads(key)
            if name == "relaystack_requests" and labels.get("route") == "/v1/chat/completions" and value > 0:
                pids.add(path.stem.split("_", 1)[1])
    return pids


def test_200_concurrent_requests_against_rpm_50_admit_exactly_50_across_two_workers(
    two_workers: tuple[GatewayStack, Path],
) -> None:
    stack, metrics_dir = two_workers
    # the kernel decides which worker accepts each connection; on a loaded machine one worker may
    # take a whole burst, which proves nothing about sharing: then burst again with a fresh key
    for _ in range(3):
        clear_of_window_edge(60.0, margin_s=10.0)  # exact counts of one fixed window
        _, key = stack.create_key(limits={"rpm": 50})
        statuses = asyncio.run(_burst(stack.base_url, key, 200))
        assert statuses.count(200) == 50, sorted(set(statuses))
        assert statuses.count(429) == 150
        deadline = time.monotonic() + 5  # each worker moves its tallies into the shared files every second
        while len(_pids_that_served_chat(metrics_dir)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        if len(_pids_that_served_chat(metrics_dir)) == 2:
            break
    assert len(_pids_that_served_chat(metrics_dir)) == 2  # both workers took part


def test_a_key_revoked_through_one_worker_fails_at_once_in_both(two_workers: tuple[GatewayStack, Path]) -> None:
    stack, _ = two_workers
    key_id, key = stack.create_key()
    fresh = {"Connection": "close", **bearer(key)}
    for _ in range(10):  # fresh connections: both workers validate (and cache) the key
        assert httpx.post(stack.base_url + "/v1/chat/completions", headers=fresh, json=chat()).status_code == 200
    assert stack.admin("DELETE", f"/v1/admin/keys/{key_id}", headers={"Connection": "close"}).status_code == 200
    for _ in range(20):
        response = httpx.post(stack.base_url + "/v1/chat/completions", headers=fresh, json=chat())
        assert response.status_code == 401 and response.json()["error"]["code"] == "key_revoked"


def test_metrics_sum_every_worker(two_workers: tuple[GatewayStack, Path]) -> None:
    stack, _ = two_workers
    _, key = stack.create_key()
    statuses = asyncio.run(_burst(stack.base_url, key, 40))
    assert statuses.count(200) == 40
    time.sleep(1.5)  # each worker moves its tallies into the shared files every second
    totals = set()
    for _ in range(6):  # whichever worker answers the scrape, it reports both workers' requests
        text = stack.admin("GET", "/metrics", headers={"Connection": "close"}).text
        found = re.findall(CHAT_200, text)
        totals.add(sum(float(v) for v in found))
    assert len(totals) == 1 and totals.pop() >= 40 + 50 + 10


async def _usage_received(base_url: str, key: str, count: int) -> list[tuple[int, int]]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        responses = await asyncio.gather(*(
            client.post("/v1/chat/completions", headers=bearer(key), json=chat(text="w " * (i % 5)))
            for i in range(count)
        ))
    assert [r.status_code for r in responses] == [200] * count
    return [(r.json()["usage"]["prompt_tokens"], r.json()["usage"]["completion_tokens"]) for r in responses]


def test_usage_totals_equal_what_the_clients_received_across_both_workers(
    two_workers: tuple[GatewayStack, Path],
) -> None:
    stack, _ = two_workers
    key_id, key = stack.create_key(name="usage-two-workers")
    received = asyncio.run(_usage_received(stack.base_url, key, 60))
    total = stack.admin("GET", f"/v1/admin/usage?key_id={key_id}", headers={"Connection": "close"}).json()["total"]
    assert total["requests"] == 60
    assert total["prompt_tokens"] == sum(p for p, _ in received)
    assert total["completion_tokens"] == sum(c for _, c in received)
