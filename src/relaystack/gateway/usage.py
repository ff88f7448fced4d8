"""What a request used and cost, written with its completion; spend per key for budgets.

``Accountant.record`` is awaited before the client gets the answer's last byte (the gate's
``settle``), and the store acknowledges only committed writes, so a delivered answer is never
missing from the usage totals. Costs come from ``pricing`` in run.yaml (dollars per million
tokens, by the model id clients send); the embedded models cost 0.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from relaystack.gateway.keys import Budget
from relaystack.gateway.settings import Price
from relaystack.storage.base import KeyStore, UsageRow

__all__ = ["Accountant", "Pricing", "Submitted", "Tokens", "fast_tokens", "period_start", "tokens_of", "utc_day"]

log = logging.getLogger("relaystack.gateway")

# how stale a budget's spend may be when another worker is also spending it
_SPEND_REFRESH_S = 1.0
# a figure this old is re-read in the background while it is still used: requests never wait for it
_SPEND_PREFETCH_S = 0.75


class Tokens(NamedTuple):  # a named tuple: made on every request, and cheap to make
    prompt: int = 0
    completion: int = 0
    cached: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def tokens_of(usage: Mapping[str, Any] | None) -> Tokens:
    """OpenAI's usage object (unknown counts, e.g. Together's -1, are 0)."""
    if not usage:
        return _ZERO
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if details.__class__ is dict else None
    if prompt.__class__ is int and completion.__class__ is int and prompt >= 0 and completion >= 0 and cached is None:
        return _new(Tokens, (prompt, completion, 0))  # the common case, without the checks below
    return Tokens(_count(prompt), _count(completion), _count(cached))


_ZERO = Tokens()
# a named tuple made from a tuple, without its generated ``__new__`` (a Python frame): made on
# every request (Tokens, UsageRow, Submitted), at about half the cost
_new = tuple.__new__


def fast_tokens(prompt: int, completion: int, cached: int = 0) -> Tokens:
    """``Tokens(prompt, completion, cached)`` for the hot path (no checks: counts already known good)."""
    return _new(Tokens, (prompt, completion, cached))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


_day_cache: tuple[int, str] = (-1, "")
_start_cache: dict[tuple[str, int], str] = {}


def utc_day(now: float | None = None) -> str:
    """Today (UTC) as YYYY-MM-DD; formatted once a day, not once a request."""
    global _day_cache
    index = int((time.time() if now is None else now) // 86_400)
    if _day_cache[0] != index:
        _day_cache = (index, dt.datetime.fromtimestamp(index * 86_400, dt.UTC).strftime("%Y-%m-%d"))
    return _day_cache[1]


def period_start(period: str, now: float | None = None) -> str:
    """The first UTC day of the budget period ``now`` falls in (calendar weeks start on Monday)."""
    index = int((time.time() if now is None else now) // 86_400)
    cached = _start_cache.get((period, index))
    if cached is not None:
        return cached
    today = dt.date(1970, 1, 1) + dt.timedelta(days=index)
    if period == "day":
        start = today.isoformat()
    elif period == "week":
        start = (today - dt.timedelta(days=today.weekday())).isoformat()
    elif period == "month":
        start = today.replace(day=1).isoformat()
    else:
        start = "0000-01-01"
    if len(_start_cache) > 64:
        _start_cache.clear()
    _start_cache[(period, index)] = start
    return start


class Pricing:
    def __init__(self, prices: Mapping[str, Price], is_local: Callable[[str], bool]) -> None:
        # model -> (input, cached input or None, output) dollars per million: read once a request
        self._rates = {m: (p.input_per_million, p.cached_input_per_million, p.output_per_million)
                       for m, p in prices.items()}
        self._is_local = is_local
        self._unpriced_warned: set[str] = set()

    def cost(self, model: str, provider: str, tokens: Tokens) -> float:
        if self._is_local(provider):
            return 0.0
        rates = self._rates.get(model)
        if rates is None:
            self._warn_unpriced(model)
            return 0.0
        input_rate, cached_rate, output_rate = rates
        prompt, completion, cached = tokens
        if cached_rate is None or not cached:
            return (prompt * input_rate + completion * output_rate) / 1_000_000
        cached = min(cached, prompt)
        return ((prompt - cached) * input_rate + cached * cached_rate + completion * output_rate) / 1_000_000

    def uncached_rates(self, model: str, provider: str) -> tuple[float, float] | None:
        """(input, output) dollars per million tokens, as ``cost`` charges them for tokens none of
        which are cached; None when they cost nothing (a local model, or no price)."""
        if self._is_local(provider):
            return None
        rates = self._rates.get(model)
        if rates is None:
            self._warn_unpriced(model)
            return None
        return rates[0], rates[2]

    def _warn_unpriced(self, model: str) -> None:
        if model not in self._unpriced_warned and len(self._unpriced_warned) < 1000:
            self._unpriced_warned.add(model)
            log.warning("No price for model '%s' in run.yaml's pricing: its cost is counted as 0.", model)


@dataclass(slots=True)
class _Spend:
    since: str
    usd: float
    read_at: float


class Submitted(NamedTuple):
    """One request's usage write, queued by ``Accountant.submit`` (or None: written by the
    caller with its stored completion, from ``Accountant.row``)."""

    write: Awaitable[None] | None
    cost: float
    spend: _Spend | None  # the budget's figure this write adds to once committed (None: no budget)

    def committed(self) -> None:
        """The write committed (or is on its way: its request was cancelled while it waited,
        so it is counted now, on the budget's safe side; the figure is re-read within a second)."""
        if self.spend is not None:
            self.spend.usd += self.cost


class _Batch:
    """The usage rows of the requests settling in one event-loop turn, merged, and a future
    for each request waiting for their commit (its own: a cancelled request cancels only it)."""

    __slots__ = ("rows", "waiters")

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str, str], UsageRow] = {}
        self.waiters: list[asyncio.Future[None]] = []


class Accountant:
    def __init__(self, store: KeyStore, pricing: Pricing) -> None:
        self._store = store
        self.pricing = pricing
        self._spend: dict[str, _Spend] = {}
        # (key id, period start) -> the read of that spend in flight: the requests that need it share it
        self._reading: dict[tuple[str, str], asyncio.Future[float]] = {}
        self._batch: _Batch | None = None

    async def record(self, key_id: str, model: str, provider: str, tokens: Tokens) -> float:
        """Add one request to its day's totals; returns its cost once committed.

        The requests that settle in the same event-loop turn share one write (rows of the same
        day, key, model and provider merged), and each still waits for the commit that holds
        its usage.
        """
        cost = self.pricing.cost(model, provider, tokens)
        row = UsageRow(utc_day(), key_id, model, provider, 1, tokens.prompt, tokens.completion, tokens.cached, cost)
        loop = asyncio.get_running_loop()
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch()
            loop.call_soon(self._flush, batch)
        where = row[:4]
        old = batch.rows.get(where)
        batch.rows[where] = row if old is None else _added(old, row)
        committed = loop.create_future()
        batch.waiters.append(committed)
        await committed
        spend = self._spend.get(key_id)
        if spend is not None:
            spend.usd += cost
        return cost

    def submit(self, key_id: str, model: str, provider: str, tokens: Tokens) -> Submitted:
        """Queue one request's usage write now, without waiting (``Gate.begin_settle``): queued
        next to the request's own store write, it commits in the same transaction. Await
        ``.write`` for the commit, then call ``.committed()`` (a budget's spend grows then)."""
        row, cost, spend = self.row(key_id, model, provider, tokens)
        return _new(Submitted, (self._store.add_usage((row,)), cost, spend))

    def row(self, key_id: str, model: str, provider: str, tokens: Tokens) -> tuple[UsageRow, float, _Spend | None]:
        """One request's usage row for its caller to write with the stored completion (one
        write, one commit), its cost, and the budget's figure to add it to once committed."""
        cost = self.pricing.cost(model, provider, tokens)
        prompt, completion, cached = tokens
        day = _day_cache  # utc_day(), without the call while the day has not changed
        today = day[1] if day[0] == int(time.time() // 86_400) else utc_day()
        row = _new(UsageRow, (today, key_id, model, provider, 1, prompt, completion, cached, cost))
        return row, cost, self._spend.get(key_id)

    def _flush(self, batch: _Batch) -> None:
        self._batch = None
        try:
            write = asyncio.ensure_future(self._store.add_usage(list(batch.rows.values())))
        except Exception as exc:  # e.g. the store is stopped
            _resolve(batch.waiters, exc)
            return
        write.add_done_callback(partial(_written, batch.waiters))

    def spent_now(self, key_id: str, budget: Budget) -> float | None:
        """``spent`` without awaiting, when the cached figure is fresh enough (None otherwise).
        (Re-read every second, so the period's start is checked then, not on every request; the
        read starts in the background a quarter second before the figure goes stale.)"""
        spend = self._spend.get(key_id)
        if spend is None:
            return None
        age = time.monotonic() - spend.read_at
        if age > _SPEND_PREFETCH_S:
            if age > _SPEND_REFRESH_S:
                return None
            self._prefetch(key_id, budget)
        return spend.usd

    async def spent(self, key_id: str, budget: Budget) -> float:
        """Dollars the key spent in its budget's current period: committed totals (all workers),
        re-read at most once a second, plus what this process added since."""
        since = period_start(budget.period)
        spend = self._spend.get(key_id)
        if spend is not None and spend.since == since and time.monotonic() - spend.read_at <= _SPEND_REFRESH_S:
            return spend.usd
        # one read for every request that needs it now (shielded: a cancelled request leaves it to the others)
        return await asyncio.shield(self._read(key_id, since))

    def _read(self, key_id: str, since: str) -> asyncio.Future[float]:
        """The read of ``key_id``'s spend since ``since`` in flight, started if there is none."""
        where = (key_id, since)
        reading = self._reading.get(where)
        if reading is None:
            reading = self._reading[where] = asyncio.ensure_future(self._read_spend(key_id, since))
            reading.add_done_callback(partial(_read_done, self._reading, where))
        return reading

    def _prefetch(self, key_id: str, budget: Budget) -> None:
        """Start re-reading a figure about to go stale, unless that read is in flight (a failure
        is left to the request that then finds the figure stale: it reads, and fails, itself)."""
        where = (key_id, period_start(budget.period))
        if where not in self._reading:
            self._read(key_id, where[1])

    async def _read_spend(self, key_id: str, since: str) -> float:
        now = time.monotonic()
        rows = await self._store.usage_totals(since=since, until="9999-12-31", key_id=key_id)
        spend = self._spend[key_id] = _Spend(since, sum(row.cost for row in rows), now)
        return spend.usd


def _read_done(reading: dict[tuple[str, str], asyncio.Future[float]], where: tuple[str, str],
               read: asyncio.Future[float]) -> None:
    reading.pop(where, None)
    if not read.cancelled():
        read.exception()  # retrieved: whoever awaited it saw it (a prefetch has nobody to tell)


def _added(old: UsageRow, new: UsageRow) -> UsageRow:
    return old._replace(
        requests=old.requests + new.requests, prompt_tokens=old.prompt_tokens + new.prompt_tokens,
        completion_tokens=old.completion_tokens + new.completion_tokens,
        cached_tokens=old.cached_tokens + new.cached_tokens, cost=old.cost + new.cost,
    )


def _written(waiters: list[asyncio.Future[None]], write: asyncio.Future[None]) -> None:
    if write.cancelled():
        _resolve(waiters, RuntimeError("the usage write was cancelled"))
    else:
        _resolve(waiters, write.exception())


def _resolve(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():  # its request was cancelled
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
