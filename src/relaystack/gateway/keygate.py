"""The gate when ``server.auth`` or ``server.quota`` is on: keys, limits, budgets, usage.

``admit`` (the request's model is known): who is calling, may they use this model and its
provider, are they within budget, and do their limits let one more request in (429 with
``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers if not); a key with a budget holds the
request's estimated cost until it settles (``holds.py``). ``settle`` (the answer is about
to end): give back the concurrency slot, add the tokens to the per-minute window, write
the usage (awaited before the last byte), then release the budget hold. ``settle`` must run
once for every admitted request on every path (errors and cancellations included); it is
idempotent, so callers may call it again from a ``finally``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from relaystack.context import RequestContext
from relaystack.errors import PermissionDeniedError, RateLimitError
from relaystack.gateway.auth import Authenticator
from relaystack.gateway.counters import Ask, Counters, InProcessCounters, Lane, Outcome, Reported, Window, WindowState
from relaystack.gateway.holds import BudgetHolds, estimated_cost
from relaystack.gateway.keys import Budget, KeyInfo
from relaystack.gateway.limit_headers import duration, header_lines, header_pairs
from relaystack.gateway.settings import Limits, QuotaSettings
from relaystack.gateway.usage import Accountant, Submitted, Tokens, tokens_of
from relaystack.storage.base import UsageRow
from relaystack.telemetry import current as telemetry

__all__ = ["SCOPE_KEY", "Caller", "KeyGate"]

log = logging.getLogger("relaystack.gateway")

# where the ASGI guard leaves the authenticated key for the gate (one check per request)
SCOPE_KEY = "relaystack.key"
_MINUTE, _DAY = 60, 86_400


@dataclass(slots=True)
class Caller:
    """``ctx.principal`` of one request: the key, and what this request holds until settled."""

    key: KeyInfo
    slots: tuple[str, ...] = ()
    token_windows: tuple[Window, ...] = ()
    lane: Lane | None = None  # admitted through the in-process counters' lane: settled through it
    # the tightest requests and tokens windows at admission: the answer's x-ratelimit-* headers,
    # rendered only when it starts, in the form its server takes (limit_headers.py)
    limited: bool = False
    requests_seen: Reported | None = None
    tokens_seen: Reported | None = None
    settled: bool = False
    usage_written: Submitted | None = None  # begun by begin_settle (write None: rides with the completion)
    tokens: Tokens | None = None  # what the answer used, once known
    hold: float = 0.0  # dollars of its key's budget this request holds until settled (holds.py)

    @property
    def key_id(self) -> str:
        return self.key.id

    @property
    def headers(self) -> list[tuple[bytes, bytes]] | None:
        """x-ratelimit-* for the answer, as (name, value); None when the key has no limits."""
        return header_pairs(self.requests_seen, self.tokens_seen) if self.limited else None

    def header_lines(self) -> bytes | None:
        """The same headers as the lines of a response head (for ``api.asgi.HEAD_WRITER``)."""
        return header_lines(self.requests_seen, self.tokens_seen) if self.limited else None

    def allows_provider(self, provider_id: str) -> bool:
        """For the router: may this request be served by ``provider_id`` (a fallback's too)?"""
        return self.key.allows_provider(provider_id)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What admitting one key's requests for one model takes (``KeyGate._plan``)."""

    gate: KeyGate  # the gate that made it (one key object may meet two gates: ADMIN, tests)
    ask: Ask  # the counters' windows and concurrency slots
    limited: bool  # the ask has any
    lane: Lane | None  # the ask on the in-process counters (None: shared counters, awaited)
    checks_access: bool  # the key is restricted to some models or providers
    budget: Budget | None  # None: no budget, or no accounting
    hold_rates: tuple[float, float] | None  # (input, output) $ per million for the budget hold; None: free


class KeyGate:
    def __init__(
        self,
        *,
        auth: Authenticator | None,
        counters: Counters,
        accountant: Accountant | None,
        provider_of: Callable[[str], str | None],
        quota: QuotaSettings | None = None,
    ) -> None:
        self.auth = auth
        self.counters = counters
        self.accountant = accountant
        self.provider_of = provider_of
        self.quota = quota
        self.holds = BudgetHolds()
        # in-process counters answer at once: no coroutine, and each plan holds its lane
        self._in_process = counters if isinstance(counters, InProcessCounters) else None

    async def authenticate(self, scope: MutableMapping[str, Any]) -> KeyInfo:
        if self.auth is None:
            return _anonymous(scope)
        return await self.auth.authenticate(scope)

    async def admit(self, scope: MutableMapping[str, Any], ctx: RequestContext) -> None:
        key = scope.get(SCOPE_KEY)
        if not isinstance(key, KeyInfo):
            key = await self.authenticate(scope)
        model = ctx.model or ""
        plan = key.plans.get(model) if self.quota is None else None
        if plan is None or plan.gate is not self:
            plan = self._plan(key, model, scope)
        if plan.checks_access:
            self._check_access(key, model)
        hold = 0.0
        budget = plan.budget
        if budget is not None:
            accountant = self.accountant
            assert accountant is not None
            spent = accountant.spent_now(key.id, budget)
            if spent is None:
                spent = await accountant.spent(key.id, budget)
            hold = self._hold_budget(key, budget, spent, ctx, plan.hold_rates)
        # usage is accounted for streams too: the upstream is asked for it (the client is shown it
        # only if it asked itself)
        ctx.usage_wanted = True
        limits = plan.ask
        if not plan.limited:
            ctx.principal = Caller(key, hold=hold)
            return
        lane = plan.lane
        try:
            if lane is not None:
                refused, requests, tokens = lane.admit()
                if refused is not None:
                    raise _refusal(key, refused)
            else:
                outcome = await self.counters.admit(limits)
                if not outcome.allowed:
                    raise _refusal(key, outcome)
                requests, tokens = _tightest(outcome.states)
        except BaseException:
            if hold:  # refused by a limit: the budget is not held
                self.holds.release(key.id, hold)
            raise
        ctx.principal = Caller(key, limits.slot_names, limits.token_windows, lane, True, requests, tokens, hold=hold)

    def _plan(self, key: KeyInfo, model: str, scope: MutableMapping[str, Any]) -> _Plan:
        """What admitting ``key``'s requests for ``model`` takes, resolved once and kept on the
        key (a reloaded key is a new object: its plans start empty, so a changed limit or budget
        is seen at once). Not kept with a quota: an anonymous caller's depends on its address."""
        ask = self._ask(key, model, scope)
        budget = key.budget if not key.is_admin and self.accountant is not None else None
        rates = None
        if budget is not None:
            assert self.accountant is not None
            # the model's provider as it routes now: a model registered again elsewhere later
            # changes only this estimate (the request's real cost is priced when it settles)
            rates = self.accountant.pricing.uncached_rates(model, self.provider_of(model) or "")
        limited = bool(ask.windows or ask.slots)
        lane = self._in_process.lane(ask) if limited and self._in_process is not None else None
        plan = _Plan(self, ask, limited, lane,
                     not key.is_admin and (key.models is not None or key.providers is not None), budget, rates)
        if self.quota is None:
            if len(key.plans) > 1000:  # model ids are the client's: keep the cache bounded
                key.plans.clear()
            key.plans[model] = plan
        return plan

    def _hold_budget(
        self, key: KeyInfo, budget: Budget, spent: float, ctx: RequestContext, rates: tuple[float, float] | None,
    ) -> float:
        """Refuse a key over its budget (``spent`` this period), counting what its requests in
        flight hold; else hold this request's estimated cost (``holds.py``) and return it."""
        # rates None: free (a local model) or unpriced, nothing to hold
        estimate = 0.0 if rates is None else estimated_cost(ctx.request_bytes, ctx.max_output_tokens, rates)
        if self.holds.take(key.id, spent, budget.max_usd, estimate):
            return estimate if estimate > 0 else 0.0
        telemetry().rate_limited("budget")
        if spent >= budget.max_usd:
            raise RateLimitError(
                f"API key {key.id} is over its budget: ${spent:.4f} spent of ${budget.max_usd:g} this "
                f"{budget.period}. An admin can raise it (PATCH /v1/admin/keys/{key.id}).",
                code="budget_exceeded",
            )
        held = self.holds.held(key.id)
        raise RateLimitError(
            f"API key {key.id} has ${budget.max_usd - spent:.4f} of its ${budget.max_usd:g} budget left this "
            f"{budget.period}, and its {held.requests} request(s) in flight may cost up to ${held.usd:.4f}. "
            "Retry when they have finished, or an admin can raise the budget "
            f"(PATCH /v1/admin/keys/{key.id}).",
            code="budget_exceeded", headers={"retry-after": "1"},
        )

    def begin_settle(self, ctx: RequestContext, rides: bool = False) -> UsageRow | None:
        caller = ctx.principal
        if not isinstance(caller, Caller) or caller.settled or caller.usage_written is not None:
            return None
        # answered: an answer the client got (an error answer used nothing), or usage the
        # upstream reported (tested inline here and in settle: no call on the hot path)
        status = ctx.status
        if self.accountant is None or not ((status is not None and status < 400) or ctx.usage):
            return None
        caller.tokens = tokens_of(ctx.usage)
        if rides:  # the caller writes the row with its completion and tells settle how that went
            row, cost, spend = self.accountant.row(caller.key.id, ctx.model or "", ctx.provider_id or "", caller.tokens)
            caller.usage_written = _new(Submitted, (None, cost, spend))
            return row
        try:
            caller.usage_written = self.accountant.submit(
                caller.key.id, ctx.model or "", ctx.provider_id or "", caller.tokens)
        except Exception as exc:  # settle reports it
            caller.usage_written = Submitted(_failed(exc), 0.0, None)
        return None

    async def settle(self, ctx: RequestContext, usage_stored: bool | None = None) -> None:
        caller = ctx.principal
        if not isinstance(caller, Caller) or caller.settled:
            return
        caller.settled = True
        try:
            tokens = caller.tokens or tokens_of(ctx.usage)
            if caller.slots or caller.token_windows:
                try:
                    if caller.lane is not None:
                        caller.lane.settle(tokens.prompt + tokens.completion)
                    else:
                        total = tokens.prompt + tokens.completion
                        await self.counters.settle(tuple((w, total) for w in caller.token_windows), caller.slots)
                except Exception as exc:
                    log.error("Could not release the limits of a request (key %s): %s", caller.key_id, exc)
                    telemetry().store_failure("limits")
            status = ctx.status
            if self.accountant is None or not ((status is not None and status < 400) or ctx.usage):
                return
            submitted = caller.usage_written
            if submitted is not None and submitted.write is None and usage_stored is not False:
                # rode with the completion (the common case: no coroutine); Submitted.committed, inline
                spend = submitted.spend
                if spend is not None:
                    spend.usd += submitted.cost
                return
            try:
                await self._usage_written(ctx, caller, tokens, usage_stored)
            except Exception as exc:
                # the answer is delivered anyway: withholding a generated answer would lose it for good
                log.error("Could not write the usage of a %s request (key %s): %s", ctx.operation, caller.key_id, exc)
                telemetry().store_failure("usage")
        finally:  # after the spend counts the request's real cost (or it failed and cost nothing)
            if caller.hold:
                self.holds.release(caller.key.id, caller.hold)

    async def _usage_written(
        self, ctx: RequestContext, caller: Caller, tokens: Tokens, usage_stored: bool | None
    ) -> None:
        """Wait for the request's usage to commit: the write begun by ``begin_settle``, the
        caller's completion write it rode in, or (neither) a write of its own now."""
        assert self.accountant is not None
        submitted = caller.usage_written
        if submitted is None or (submitted.write is None and usage_stored is False):
            # nothing begun, or the completion it rode with was not stored (nor was the usage)
            await self.accountant.record(caller.key_id, ctx.model or "", ctx.provider_id or "", tokens)
            return
        if submitted.write is not None:
            try:
                await submitted.write
            except asyncio.CancelledError:
                submitted.committed()  # the write goes on without this request
                raise
        # rode with the completion: committed (True), or its request ended before it knew (None:
        # the write was queued and goes on; counted now, on the budget's safe side)
        submitted.committed()

    def _check_access(self, key: KeyInfo, model: str) -> None:
        if not key.allows_model(model):
            telemetry().auth_failure("model")
            raise PermissionDeniedError(
                f"API key {key.id} may not use model '{model}'. Its models: {sorted(key.models or ())}.",
                param="model", code="model_not_allowed",
            )
        if key.providers is None:
            return
        provider = self.provider_of(model)
        if provider is not None and not key.allows_provider(provider):
            telemetry().auth_failure("provider")
            raise PermissionDeniedError(
                f"API key {key.id} may not use provider '{provider}' (model '{model}'). "
                f"Its providers: {sorted(key.providers or ())}.",
                param="model", code="provider_not_allowed",
            )

    def _ask(self, key: KeyInfo, model: str, scope: MutableMapping[str, Any]) -> Ask:
        windows: list[Window] = []
        slots: list[tuple[str, int]] = []
        if not key.is_admin:
            _add_limits(key.id, "", key.limits, windows, slots)
            per_model = key.model_limits.get(model)
            if per_model is not None:
                _add_limits(f"{key.id}:{model}", f"model '{model}'", per_model, windows, slots)
        if self.quota is not None:
            if key.id == "anonymous":
                host = _client_host(scope)
                windows.append(Window(f"client:{host}:quota", self.quota.anonymous_max_requests, _DAY, "requests",
                                      "quota", f"client {host}"))
            elif not key.is_admin:
                windows.append(Window(f"{key.id}:quota", self.quota.authenticated_max_requests, _DAY, "requests",
                                      "quota"))
        return Ask(tuple(windows), tuple(slots))


def _add_limits(prefix: str, about: str, limits: Limits, windows: list[Window], slots: list[tuple[str, int]]) -> None:
    if limits.rpm is not None:
        windows.append(Window(f"{prefix}:rpm", limits.rpm, _MINUTE, "requests", "rpm", about))
    if limits.rpd is not None:
        windows.append(Window(f"{prefix}:rpd", limits.rpd, _DAY, "requests", "rpd", about))
    if limits.tpm is not None:
        windows.append(Window(f"{prefix}:tpm", limits.tpm, _MINUTE, "tokens", "tpm", about))
    if limits.max_concurrent is not None:
        slots.append((f"{prefix}:concurrent", limits.max_concurrent))


def _anonymous(scope: MutableMapping[str, Any]) -> KeyInfo:
    return KeyInfo(id="anonymous")


def _client_host(scope: MutableMapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _refusal(key: KeyInfo, outcome: Outcome) -> RateLimitError:
    retry = max(1, math.ceil(outcome.retry_after_s))
    refused = outcome.refused_by
    headers = {"retry-after": str(retry)}
    if isinstance(refused, Window):
        reason = refused.reason or refused.kind
        unit = "tokens" if refused.kind == "tokens" else "requests"
        per = "per minute" if refused.seconds == _MINUTE else "per day"
        who = refused.about if key.id == "anonymous" else key.id + (f" and {refused.about}" if refused.about else "")
        message = f"Rate limit reached for {who}: {refused.limit} {unit} {per}. Retry in {retry} s."
        suffix = "tokens" if refused.kind == "tokens" else "requests"
        headers[f"x-ratelimit-limit-{suffix}"] = str(refused.limit)
        headers[f"x-ratelimit-remaining-{suffix}"] = "0"
        headers[f"x-ratelimit-reset-{suffix}"] = duration(outcome.retry_after_s)
    else:
        reason = "concurrency"
        message = f"Too many requests in flight for {key.id}: the limit is reached. Retry when one has finished."
    telemetry().rate_limited(reason)
    return RateLimitError(message, headers=headers)


def _tightest(states: tuple[WindowState, ...]) -> tuple[Reported | None, Reported | None]:
    """The requests and the tokens window with the least room left."""
    requests: Reported | None = None
    tokens: Reported | None = None
    for window, used, reset_s in states:
        if window.kind == "requests":
            if requests is None or window.limit - used < requests[0].limit - requests[1]:
                requests = (window, used, reset_s)
        elif tokens is None or window.limit - used < tokens[0].limit - tokens[1]:
            tokens = (window, used, reset_s)
    return requests, tokens


async def _failed(exc: Exception) -> None:
    raise exc


_new = tuple.__new__  # a named tuple made from a tuple, without its generated __new__
