"""The gate's usage write rides in the stored completion's own write when the store commits
both in one transaction: one write per request; when the completion was not stored, the gate
writes the usage on its own, and never counts a request twice."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relaystack.context import RequestContext
from relaystack.errors import RateLimitError
from relaystack.gateway.build import GatewayParts, build_gateway
from relaystack.gateway.keygate import KeyGate
from relaystack.gateway.keys import new_key
from relaystack.gateway.settings import AuthSettings, Price
from relaystack.storage.sqlite import SqliteStore

ADMIN = "admin-key-for-usage-rides-" + "0" * 16
MODEL = "m"
USAGE = {"prompt_tokens": 1000, "completion_tokens": 2000, "total_tokens": 3000}


class Setup:
    def __init__(self, store: SqliteStore, parts: GatewayParts, token: str, key_id: str) -> None:
        self.store, self.parts, self.key_id = store, parts, key_id
        self.scope: dict[str, Any] = {"type": "http", "path": "/v1/chat/completions", "client": ("127.0.0.1", 1),
                                      "headers": [(b"authorization", b"Bearer " + token.encode())]}
        assert parts.guard is not None and isinstance(parts.guard.gate, KeyGate)
        self.gate: KeyGate = parts.guard.gate

    async def answered(self) -> RequestContext:
        ctx = RequestContext("chat")
        ctx.model = MODEL
        await self.gate.admit(dict(self.scope), ctx)
        ctx.provider_id, ctx.status, ctx.usage = "p", 200, USAGE
        return ctx

    async def totals(self) -> list[tuple[int, int]]:
        rows = await self.store.usage_totals(since="0000-01-01", until="9999-12-31", key_id=self.key_id)
        return [(r.requests, r.prompt_tokens) for r in rows]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    store = SqliteStore(tmp_path / "relaystack.db")
    await store.start()
    parts = build_gateway(
        auth=AuthSettings(admin_key=ADMIN), quota=None, cors=None, metrics=False,
        pricing={MODEL: Price(input_per_million=1.0, output_per_million=1.0)}, store=store, db_path=store.path,
        prefixes=("/v1",), provider_of=lambda model: "p", is_local=lambda provider: False,
    )
    await parts.start()
    key_id, token = new_key()
    assert parts.guard is not None and parts.guard.gate.auth is not None
    await store.put_key({"id": key_id, "secret_hash": parts.guard.gate.auth.hash(token), "name": "t",
                         "budget": {"max_usd": 100, "period": "month"}, "created_at": int(time.time())})
    yield Setup(store, parts, token, key_id)
    await parts.stop()
    await store.stop()


async def test_the_usage_row_is_written_with_the_completion_and_counted_once(setup: Setup) -> None:
    ctx = await setup.answered()
    row = setup.gate.begin_settle(ctx, True)
    assert row is not None and row.key_id == setup.key_id and row.prompt_tokens == 1000
    assert await setup.totals() == []  # nothing written by the gate itself
    await setup.store.put_completion({"id": "c1", "created": 1, "model": MODEL}, [], None, row)
    await setup.gate.settle(ctx, True)
    assert await setup.totals() == [(1, 1000)]
    assert setup.gate.accountant is not None
    spent = setup.gate.accountant.spent_now(setup.key_id, ctx.principal.key.budget)  # type: ignore[union-attr]
    assert spent == pytest.approx(0.003)  # the budget's spend counts it once committed


async def test_a_completion_not_stored_has_its_usage_written_on_its_own(setup: Setup) -> None:
    ctx = await setup.answered()
    assert setup.gate.begin_settle(ctx, True) is not None
    await setup.gate.settle(ctx, False)  # the store failed: neither was written
    assert await setup.totals() == [(1, 1000)]


async def test_a_request_ended_while_its_write_was_queued_is_not_written_twice(setup: Setup) -> None:
    ctx = await setup.answered()
    row = setup.gate.begin_settle(ctx, True)
    await setup.store.put_completion({"id": "c2", "created": 1, "model": MODEL}, [], None, row)
    await setup.gate.settle(ctx)  # outcome unknown (cancelled): the queued write goes on, no second one
    await setup.gate.settle(ctx, False)  # idempotent
    assert await setup.totals() == [(1, 1000)]


async def test_the_admission_plan_is_kept_on_the_key_and_a_changed_key_gets_a_new_one(setup: Setup) -> None:
    ctx = await setup.answered()
    key = ctx.principal.key  # type: ignore[union-attr]
    plan = key.plans[MODEL]
    assert plan.gate is setup.gate and plan.hold_rates == (1.0, 1.0)
    await setup.gate.settle(ctx)
    assert (await setup.answered()).principal.key.plans[MODEL] is plan  # type: ignore[union-attr]
    record = await setup.store.get_key(setup.key_id)
    assert record is not None
    await setup.store.put_key({**record, "budget": None, "limits": {"rpm": 1}})
    ctx = await setup.answered()  # the key reloaded: a new object, a new plan (rpm 1, no budget)
    key = ctx.principal.key  # type: ignore[union-attr]
    assert key.plans[MODEL] is not plan and key.plans[MODEL].budget is None and key.plans[MODEL].limited
    with pytest.raises(RateLimitError):
        await setup.answered()
