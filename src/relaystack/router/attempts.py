"""The attempt loop of a routed model: deployments in strategy order, retries, fallbacks, deadline.

For each deployment in order: skip it while it cools down; else call it, up to ``1 + retries``
times, waiting a jittered backoff (or the upstream's Retry-After, up to a cap) between tries,
and re-checking its cooldown before each retry (another request may have opened it). A
failure no other attempt could fix (a 400, a replay miss) ends the request at once. The
deadline bounds everything: no wait or attempt starts that could not finish before it.

A stream counts as answered at its first event: the loop reads it before returning, so a
stream that fails before that is retried like any other failure, and one that fails after
it ends with an error event (``streams.guard``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from relaystack.context import Attempt, Operation, RequestContext
from relaystack.errors import RelaystackError, ServiceUnavailableError, UpstreamTimeoutError
from relaystack.providers.base import CallContext, Provider, Reply, StreamReply
from relaystack.router.cooldown import CooldownState
from relaystack.router.deadlines import AnswerBound, Deadlines
from relaystack.router.plan import Plan, Target
from relaystack.router.policy import Failure, classify, fault_for
from relaystack.router.stats import Event, RouterStats
from relaystack.router.streams import first_block, guard

__all__ = ["METHODS", "AttemptLoop", "Routed", "decorate"]

log = logging.getLogger("relaystack.router")

_NO_DEADLINE_LEASE_S = 600.0


@dataclass(slots=True)
class Routed:
    reply: Reply
    call: CallContext
    provider: Provider


# the Provider method each operation calls
METHODS: dict[Operation, str] = {
    "chat": "chat_completion", "completion": "completion", "embeddings": "embeddings", "rerank": "rerank",
}


@dataclass(slots=True)
class _Request:
    """What one request's loop keeps between attempts."""

    plan: Plan
    operation: Operation
    body: dict[str, Any]
    ctx: RequestContext
    deadline_at: float | None  # loop time
    budget: int
    last: RelaystackError | None = None
    last_target: Target | None = None
    soonest_back: float | None = None  # epoch: the earliest end of a skipped deployment's cooldown


class AttemptLoop:
    def __init__(
        self,
        state: CooldownState,
        stats: RouterStats,
        rng: random.Random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        tick: float = 1.0,
    ) -> None:
        self.state = state
        self.stats = stats
        self.rng = rng
        self.sleep = sleep
        self.clock = clock  # wall time, as the cooldown state keeps it
        self.deadlines = Deadlines(tick)

    async def run(self, plan: Plan, operation: Operation, body: dict[str, Any], ctx: RequestContext) -> Routed:
        # one flat loop (no helper coroutine around an attempt): every frame between the request's
        # task and the provider is crossed again each time the upstream I/O suspends and resumes
        loop = asyncio.get_running_loop()
        deadline = plan.policy.deadline_s
        deadline_at = None if deadline is None else loop.time() + deadline - (time.monotonic() - ctx.started)
        request = _Request(plan, operation, body, ctx, deadline_at, ctx.max_attempts or 1_000_000)
        for target in plan.order(self.rng):
            if ctx.attempts >= request.budget or self._out_of_time(request):
                break
            probe = await self._admit(request, target) if plan.cools else False
            retry = 0
            while probe is not None:
                event: Event | None = "retry" if retry else ("fallback" if request.last is not None else None)
                try:
                    return await self._attempt(request, target, probe, event)
                except RelaystackError as exc:
                    failure = await self._failed(request, target, exc, probe)
                retry += 1
                probe = await self._again(request, target, failure, retry)
        raise self._final_error(request)

    async def _failed(self, request: _Request, target: Target, exc: RelaystackError, probe: bool) -> Failure:
        """Count the failure towards the deployment's cooldown; raise it if no attempt can fix it."""
        plan, policy = request.plan, request.plan.policy
        failure = classify(exc)
        request.last, request.last_target = exc, target
        if not policy.counts(failure):
            raise decorate(exc, request.ctx)
        if plan.cools:
            opened = await self.state.failed(target.key, policy.cooldown, probe=probe, hold_s=policy.hold_s(failure))
            if opened is not None:
                target.counts["cooldown"] += 1
                log.warning("model %s: deployment %s cooling down for %.1f s",
                            plan.model, target.name, opened - self.clock())
        return failure

    async def _again(self, request: _Request, target: Target, failure: Failure, retry: int) -> bool | None:
        """After a failure: whether to try the same deployment again (after a wait), as ``_admit``
        answers; None moves on to the next deployment."""
        policy = request.plan.policy
        if retry > policy.retries or request.ctx.attempts >= request.budget or not policy.may_retry_same(failure):
            return None
        delay = policy.delay_s(retry, failure, self.rng)
        if delay is None or self._out_of_time(request, delay):
            return None
        await self.sleep(delay)
        return await self._admit(request, target)  # it may have started cooling meanwhile

    async def _admit(self, request: _Request, target: Target) -> bool | None:
        """True: go, as the probe; False: go; None: skip it (cooling down)."""
        if not request.plan.cools:
            return False
        lease = _NO_DEADLINE_LEASE_S
        if request.deadline_at is not None:
            lease = max(1.0, request.deadline_at - asyncio.get_running_loop().time())
        verdict, until = await self.state.admit(target.key, lease)
        if verdict == "skip":
            target.counts["skipped"] += 1
            if request.soonest_back is None or until < request.soonest_back:
                request.soonest_back = until
            return None
        if verdict == "probe":
            target.counts["probe"] += 1
            return True
        return False

    async def _attempt(self, request: _Request, target: Target, probe: bool, event: Event | None) -> Routed:
        plan, ctx = request.plan, request.ctx
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeouts = target.timeouts
        end_at = _earliest(request.deadline_at, started + timeouts.total_s if timeouts.total_s else None)
        answer_at = _earliest(end_at, started + timeouts.first_byte_s if timeouts.first_byte_s else None)
        fault = None if ctx.fault is None else fault_for(ctx.fault, target.name, plan.names)
        call = CallContext(target.entry, plan.model, ctx.provider_data, fault, ctx.api, timeouts.connect_s,
                           usage_wanted=ctx.usage_wanted)
        record = Attempt(target.name, target.provider_id, time.monotonic())
        if event is not None and ctx.attempt_log:
            ctx.attempt_log[-1].then = event  # what the previous failure led to
        ctx.attempt_log.append(record)
        ctx.attempts += 1
        ctx.provider_id, ctx.deployment = target.provider_id, target.name
        counts = target.counts
        counts["attempt"] += 1
        if event is not None:
            counts[event] += 1
        target.outstanding += 1
        reply: Reply | None = None
        # the answer's time bound, kept by the shared sweeper (deadlines.py)
        bound = None
        if answer_at is not None:
            bound = AnswerBound(answer_at)
            self.deadlines.add(bound)
        try:
            try:
                reply = await getattr(target.provider, METHODS[request.operation])(request.body, call)
                first = await first_block(reply.blocks) if isinstance(reply, StreamReply) else None
            except asyncio.CancelledError:
                if bound is None or not bound.expired():
                    raise
                raise self._timed_out(request, target, answer_at, end_at) from None
            finally:
                if bound is not None:
                    self.deadlines.discard(bound)
                # every secret of the call, a token its auth exchanged included, is scrubbed from
                # whatever is written for the request (responses, error events, stored rows, logs)
                ctx.redactor.add(target.provider.secrets(call))
        except BaseException as exc:
            target.outstanding -= 1
            if isinstance(reply, StreamReply):
                await _close(reply)
            await self._attempt_failed(request, target, record, exc, probe)
            raise
        record.duration_s = time.monotonic() - record.started
        record.status = 200 if isinstance(reply, StreamReply) else reply.status
        if probe:
            await self.state.succeeded(target.key, probe=True)
        if not isinstance(reply, StreamReply):
            target.outstanding -= 1
            return Routed(reply, call, target.provider)
        return Routed(self._guarded(request, target, record, reply, first, end_at), call, target.provider)

    def _guarded(
        self, request: _Request, target: Target, record: Attempt, reply: StreamReply, first: bytes | None,
        end_at: float | None,
    ) -> StreamReply:
        plan = request.plan
        if end_at is None:
            reason = ""
        elif end_at == request.deadline_at:
            reason = f"the request's deadline of {plan.policy.deadline_s:g} s passed (routing deadline_s)"
        else:
            reason = f"the attempt's {target.timeouts.total_s:g} s ran out (routing timeouts.total_s)"

        ended = False

        def release() -> None:
            nonlocal ended
            if not ended:
                ended = True
                target.outstanding -= 1

        async def on_end(error: RelaystackError | None) -> None:
            release()
            if error is None:
                return
            record.outcome, record.status, record.error_code = "error", error.status_code, error.code
            target.counts["failure"] += 1
            log.warning("model %s: the stream from deployment %s (provider %s) broke after its first event: %s",
                        plan.model, target.name, target.provider_id, error.message[:300])
            if plan.cools and plan.policy.counts(classify(error)):
                await self.state.failed(target.key, plan.policy.cooldown, probe=False)

        async def close() -> None:
            release()  # also when the blocks were never iterated (the client left at once)
            await reply.aclose()

        blocks = guard(first, reply.blocks, idle_s=target.timeouts.idle_s, end_at=end_at, end_reason=reason,
                       on_end=on_end, deadlines=self.deadlines)
        # the guard passes the blocks on as they are: the reply's stored form and end signal still hold
        return replace(reply, blocks=blocks, close=close)

    async def _attempt_failed(
        self, request: _Request, target: Target, record: Attempt, exc: BaseException, probe: bool
    ) -> None:
        plan, ctx = request.plan, request.ctx
        record.duration_s = time.monotonic() - record.started
        if not isinstance(exc, RelaystackError):
            record.outcome = "cancelled"
            if probe:
                await self.state.abandoned(target.key)
            return
        failure = classify(exc)
        counts = plan.policy.counts(failure)
        record.outcome = "error" if counts else "refused"
        record.status, record.error_code = exc.status_code, exc.code
        target.counts["failure"] += 1
        if not counts:
            if probe:
                await self.state.abandoned(target.key)
            return
        log.warning(
            "model %s: attempt %d on deployment %s (provider %s) failed after %.0f ms: %s %s",
            plan.model, ctx.attempts, target.name, target.provider_id, record.duration_s * 1000,
            exc.status_code, exc.message[:300],
        )

    def _timed_out(self, request: _Request, target: Target, answer_at: float | None,
                   end_at: float | None) -> UpstreamTimeoutError:
        policy = request.plan.policy
        if answer_at is not None and answer_at == request.deadline_at:
            return UpstreamTimeoutError(
                f"Model '{request.plan.model}' did not answer within the request's deadline of "
                f"{policy.deadline_s:g} s (routing deadline_s), retries and fallbacks included."
            )
        if answer_at == end_at:
            what = f"{target.timeouts.total_s:g} s (routing timeouts.total_s)"
        else:
            what = f"{target.timeouts.first_byte_s:g} s (routing timeouts.first_byte_s)"
        return UpstreamTimeoutError(f"Deployment '{target.name}' sent no answer within {what}.")

    def _out_of_time(self, request: _Request, wait: float = 0.0) -> bool:
        if request.deadline_at is None:
            return False
        return asyncio.get_running_loop().time() + wait >= request.deadline_at

    def _final_error(self, request: _Request) -> RelaystackError:
        plan, ctx = request.plan, request.ctx
        if request.last is None and request.soonest_back is None:
            return decorate(UpstreamTimeoutError(
                f"Model '{plan.model}' could not be tried within the request's deadline of "
                f"{plan.policy.deadline_s:g} s (routing deadline_s)."), ctx)
        if request.last is None:
            now = self.clock()
            back = max(1, math.ceil((request.soonest_back or now) - now))
            error: RelaystackError = ServiceUnavailableError(
                f"Every deployment of model '{plan.model}' is cooling down after failures "
                f"({', '.join(plan.names)}); the first is back in {back} s. GET /v1/health shows each one's state.",
                code="no_healthy_deployment", headers={"Retry-After": str(back)},
            )
            plan.targets[0].counts["exhausted"] += 1
            return decorate(error, ctx)
        last = request.last
        assert request.last_target is not None
        request.last_target.counts["exhausted"] += 1
        if ctx.attempts > 1:
            tried = ", ".join(dict.fromkeys(a.deployment for a in ctx.attempt_log))
            last.message = f"{last.message} (model '{plan.model}': {ctx.attempts} attempts failed, on {tried})"
        return decorate(last, ctx)


def decorate(exc: RelaystackError, ctx: RequestContext) -> RelaystackError:
    """The visibility headers on an error the router raises (the API sends ``exc.headers``)."""
    exc.headers["x-relaystack-attempts"] = str(ctx.attempts)
    if ctx.provider_id is not None:
        exc.headers["x-relaystack-provider"] = ctx.provider_id
    if ctx.deployment is not None:
        exc.headers["x-relaystack-deployment"] = ctx.deployment
    if ctx.attempts > 1:
        # relaystack already retried: the OpenAI SDKs honour this and do not retry on top
        exc.headers["x-should-retry"] = "false"
    return exc


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


async def _close(reply: StreamReply) -> None:
    aclose = getattr(reply.blocks, "aclose", None)
    try:
        if aclose is not None:
            await aclose()
    finally:
        await reply.aclose()
