"""A budget holds against the requests in flight: each request of a key with a budget holds its
estimated cost (its prompt by size, its ``max_tokens`` at the output price) from admission until
it settles, so requests sent together cannot all spend past the budget. In process, against an
upstream that answers only when told to (every admitted request is then in flight at once)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaystack.api.app import RelaystackApp, create_app
from relaystack.config import parse_config
from relaystack.gateway.holds import BudgetHolds, estimated_tokens
from relaystack.gateway.keygate import KeyGate
from relaystack.gateway.usage import Tokens
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.mock import MockResponse, MockUpstream

ADMIN = "admin-" + secrets.token_hex(16)
MODEL = "compat/m"
# a dollar per thousand output tokens, prompts free: a request with max_tokens 100 costs (and holds) $0.10
PRICE = {"input_per_million": 0.0, "output_per_million": 1000.0}


class HeldUpstream:
    """Answers every chat request with ``max_tokens`` completion tokens once ``release`` is set
    (and the model listing at once)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0

    async def answer(self, request: UpstreamRequest) -> MockResponse:
        if request.url.endswith("/models"):
            return MockResponse.json({"object": "list", "data": [{"id": "m", "object": "model"}]})
        self.waiting += 1
        await self.release.wait()
        used = request.json.get("max_tokens") or 1
        return MockResponse.json({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": used, "total_tokens": 5 + used},
        })


@asynccontextmanager
async def _served(tmp_path: Path, upstream: HeldUpstream) -> AsyncIterator[tuple[RelaystackApp, httpx.AsyncClient]]:
    raw = {
        "providers": {"inference": [{"provider_id": "compat", "provider_type": "remote::openai-compat",
                                     "config": {"base_url": "http://fake.invalid/v1", "api_key": "fake-key-123456"}}]},
        "models": [{"model_id": MODEL, "provider_id": "compat", "provider_model_id": "m"}],
        "storage": {"db_path": str(tmp_path / "relaystack.db")},
        "server": {"auth": {}, "access_log": False},
        "pricing": {MODEL: PRICE},
    }
    app = create_app(parse_config(raw, env={}), environ={"RELAYSTACK_ADMIN_KEY": ADMIN})
    for provider in app.providers:
        if isinstance(provider, OpenAICompatProvider):
            provider.upstream = MockUpstream(upstream.answer)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relaystack.test", timeout=30) as client:
            yield app, client
    finally:
        await app.shutdown()


async def _key(client: httpx.AsyncClient, **fields: Any) -> tuple[str, str]:
    made = await client.post("/v1/admin/keys", json=fields, headers={"Authorization": f"Bearer {ADMIN}"})
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


def _chat(client: httpx.AsyncClient, key: str, max_tokens: int | None = 100) -> Any:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


async def test_requests_sent_together_spend_no_more_than_the_budget_and_one_request(tmp_path: Path) -> None:
    upstream = HeldUpstream()
    async with _served(tmp_path, upstream) as (app, client):
        key_id, key = await _key(client, budget={"max_usd": 0.35, "period": "day"})
        sent = [asyncio.create_task(_chat(client, key)) for _ in range(12)]
        async with asyncio.timeout(20):  # every request is either in flight upstream or refused
            while upstream.waiting + sum(t.done() for t in sent) < len(sent):
                await asyncio.wait(sent, timeout=0.01)
        assert upstream.waiting == 4  # $0, $0.10, $0.20, $0.30 held when each was admitted: under $0.35
        upstream.release.set()
        answers = await asyncio.gather(*sent)
        refused = [a for a in answers if a.status_code == 429]
        assert len(refused) == 8 and sum(a.status_code == 200 for a in answers) == 4
        error = refused[0].json()["error"]
        assert error["code"] == "budget_exceeded" and "in flight" in error["message"] and key_id in error["message"]
        assert refused[0].headers["retry-after"] == "1"
        usage = (await client.get("/v1/admin/usage", params={"key_id": key_id},
                                  headers={"Authorization": f"Bearer {ADMIN}"})).json()
        assert usage["total"]["cost_usd"] == pytest.approx(0.40)  # at most one request past the budget
        gate = app.gateway.gate
        assert isinstance(gate, KeyGate) and gate.holds.held(key_id).requests == 0  # every hold released
        over = await _chat(client, key)  # spent $0.40 of $0.35: over budget, nothing in flight
        assert over.status_code == 429 and "is over its budget" in over.json()["error"]["message"]


async def test_a_refused_or_failed_request_gives_its_hold_back(tmp_path: Path) -> None:
    upstream = HeldUpstream()
    upstream.release.set()
    async with _served(tmp_path, upstream) as (app, client):
        key_id, key = await _key(client, budget={"max_usd": 100, "period": "day"}, limits={"max_concurrent": 1})
        bad = await client.post("/v1/responses", json={"model": MODEL, "input": "hi", "max_output_tokens": 50,
                                                       "previous_response_id": "resp_unknown"},
                                headers={"Authorization": f"Bearer {key}"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "previous_response_not_found"
        gate = app.gateway.gate
        assert isinstance(gate, KeyGate) and gate.holds.held(key_id).requests == 0
        # the concurrency slot came back too: the next request is served, not refused as one too many
        assert (await _chat(client, key, max_tokens=None)).status_code == 200
        assert gate.holds.held(key_id).requests == 0


def test_the_estimate_counts_the_body_by_size_and_the_output_cap() -> None:
    assert estimated_tokens(4000, 256) == Tokens(1000, 256)
    assert estimated_tokens(10, None) == Tokens(2, 0)  # no max_tokens: only the prompt is held
    holds = BudgetHolds()
    holds.hold("k", 0.25)
    holds.hold("k", 0.5)
    assert (holds.held("k").usd, holds.held("k").requests) == (0.75, 2)
    holds.release("k", 0.25)
    holds.release("k", 0.5)
    assert holds.held("k").requests == 0 and holds.held("k").usd == 0.0


def test_take_holds_only_under_the_budget_and_only_a_cost() -> None:
    holds = BudgetHolds()
    assert not holds.take("k", 1.0, 1.0, 0.25)  # spent it all: refused, nothing held
    assert holds.held("k").requests == 0
    assert holds.take("k", 0.5, 1.0, 0.0) and holds.held("k").requests == 0  # free: admitted, nothing held
    assert holds.take("k", 0.5, 1.0, 0.25) and holds.take("k", 0.5, 1.0, 0.125)
    assert (holds.held("k").usd, holds.held("k").requests) == (0.375, 2)
    assert not holds.take("k", 0.625, 1.0, 0.01)  # spend plus holds reach the budget: refused
    assert holds.held("k").requests == 2
