"""The router: the one place the API layer (and the front-ends) call to reach a provider.

A model declared with ``deployments:`` (or given a ``routing:``) is *routed*: its deployments
are tried in strategy order with retries, fallbacks, timeouts and cooldowns (attempts.py).
With a top-level ``routing:`` section every other model is routed too, as a model with one
deployment (retries and timeouts; a lone deployment is never cooled down). Without one, a
plain model takes the path it always took: resolve, one call, errors passed through as
they came; that path costs one dict lookup more than before the router existed.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from relaystack.context import Operation, RequestContext
from relaystack.errors import ModelTypeError, RelaystackError
from relaystack.providers.base import ModelType
from relaystack.registry import Registry
from relaystack.router.attempts import METHODS, AttemptLoop, Routed, decorate
from relaystack.router.cooldown import CooldownState, InProcessCooldowns
from relaystack.router.plan import Plan, Target
from relaystack.router.policy import Policy, RouterSettings, fault_for
from relaystack.router.stats import RouterStats
from relaystack.routing_config import RoutingConfig, merge_timeouts

__all__ = ["Routed", "Router"]

log = logging.getLogger("relaystack.router")

# plans of models routed as one deployment, kept per model id (ids clients invent are not kept past this)
_MAX_CACHED_PLANS = 4096
_MODEL_TYPE: dict[Operation, ModelType] = {
    "chat": "llm", "completion": "llm", "embeddings": "embedding", "rerank": "rerank",
}


class Router:
    def __init__(
        self,
        registry: Registry,
        settings: RouterSettings | None = None,
        *,
        state: CooldownState | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``state``: where cooldowns live (default: this process); ``clock``: wall time, the
        cooldown state's (tests move it)."""
        self.registry = registry
        self.settings = settings or RouterSettings()
        self.stats = RouterStats()
        self.state: CooldownState = state or InProcessCooldowns(clock)
        self.loop = AttemptLoop(self.state, self.stats, rng or random.Random(), clock=clock,
                                tick=_tick(self.settings))
        default = self.settings.default
        self._default_policy = Policy.from_config(default) if default is not None else None
        self._plans: dict[str, Plan] = self._build_plans()
        # plain models (no deployments) with a routing: of their own: routed as one deployment
        self._single_policies: dict[str, Policy] = {
            model: Policy.from_config(routing)
            for model, routing in (self.settings.per_model or {}).items()
            if model not in self._plans
        }
        self._single_cache: dict[str, Plan] = {}

    async def send(self, operation: Operation, body: dict[str, Any], ctx: RequestContext) -> Routed:
        """Serve ``body`` with the model it names, and return the reply.

        Raises ``RelaystackError`` (model not found, wrong type, upstream errors, with the
        ``x-relaystack-*`` headers set) before any byte reached the client; a ``StreamReply``
        raises from its iterator once it started.
        """
        model = body["model"]
        ctx.model = model
        plan = self._plans.get(model)
        if plan is None:
            policy = self._single_policies.get(model, self._default_policy) if self._single_policies else \
                self._default_policy
            if policy is None:
                # a plain model without routing: one call, as relaystack always did (inlined: every
                # frame here is crossed again each time the upstream I/O suspends and resumes)
                provider, call = await self.registry.resolve_fresh(model, _MODEL_TYPE[operation])
                call.provider_data = ctx.provider_data
                call.api = ctx.api
                if ctx.fault is not None:
                    call.fault = fault_for(ctx.fault, provider.provider_id)
                ctx.provider_id = provider.provider_id
                ctx.attempts += 1
                try:
                    reply = await getattr(provider, METHODS[operation])(body, call)
                except RelaystackError as exc:
                    raise decorate(exc, ctx) from None
                return Routed(reply, call, provider)
            plan = await self._single_plan(model, operation, policy)
        elif plan.model_type != _MODEL_TYPE[operation]:
            raise _wrong_type(model, plan.model_type, _MODEL_TYPE[operation])
        return await self.loop.run(plan, operation, body, ctx)

    async def _single_plan(self, model: str, operation: Operation, policy: Policy) -> Plan:
        """A model without deployments, routed: one deployment, its provider (kept while the
        registry resolves the model to the same entry)."""
        provider, call = await self.registry.resolve_fresh(model, _MODEL_TYPE[operation])
        cached = self._single_cache.get(model)
        if cached is not None and cached.targets[0].entry is call.model and cached.policy is policy:
            return cached
        keep = len(self._single_cache) < _MAX_CACHED_PLANS
        counts = self.stats.counter(model, provider.provider_id) if keep else Counter[str]()
        target = Target(provider.provider_id, provider, call.model, policy.timeouts,
                        key=f"{model}|{provider.provider_id}", counts=counts)
        plan = Plan(model, call.model.model_type, (target,), policy)
        if keep:
            self._single_cache[model] = plan
        return plan

    def _build_plans(self) -> dict[str, Plan]:
        plans: dict[str, Plan] = {}
        for model, deployments in self.registry.deployment_table().items():
            routing = self.settings.for_model(model)
            policy = Policy.from_config(routing or RoutingConfig())
            targets = []
            for dep in deployments:
                provider = self.registry.providers[dep.entry.provider_id]
                if not provider.allows(dep.entry.provider_resource_id):
                    log.warning("Model '%s': deployment '%s' names '%s', which provider '%s' does not allow "
                                "(allowed_models); skipped.", model, dep.name, dep.entry.provider_resource_id,
                                provider.provider_id)
                    continue
                timeouts = merge_timeouts(policy.timeouts, dep.config.timeouts)
                targets.append(Target(dep.name, provider, dep.entry, timeouts, dep.config.weight,
                                      dep.config.priority, key=f"{model}|{dep.name}",
                                      counts=self.stats.counter(model, dep.name)))
            if targets:
                plans[model] = Plan(model, deployments[0].entry.model_type, tuple(targets), policy)
        return plans

    # -- visibility -------------------------------------------------------------------------
    async def describe(self) -> dict[str, Any]:
        """Each routed model's deployments and their state, for ``GET /v1/health``."""
        out: dict[str, Any] = {}
        for model, plan in self._plans.items():
            if not plan.cools:
                continue
            health = await self.state.snapshot(t.key for t in plan.targets)
            out[model] = {
                t.name: {
                    "provider_id": t.provider_id,
                    "provider_model_id": t.entry.provider_resource_id,
                    "state": health[t.key].state,
                    "until": _iso(health[t.key].until),
                    "outstanding": t.outstanding,
                    "counts": dict(t.counts),
                }
                for t in plan.targets
            }
        return out


def _tick(settings: RouterSettings) -> float:
    """How often the bounds are swept: a tenth of the shortest one configured, 5 ms .. 1 s."""
    configs = [c for c in (settings.default, *(settings.per_model or {}).values()) if c is not None]
    bounds = [b for c in configs for b in (c.deadline_s, c.timeouts.first_byte_s, c.timeouts.idle_s,
                                           c.timeouts.total_s) if b is not None]
    bounds += [b for t in settings.deployment_timeouts for b in (t.first_byte_s, t.idle_s, t.total_s) if b]
    return min(1.0, max(0.005, min(bounds, default=10.0) / 10))


def _wrong_type(model: str, actual: ModelType, wanted: ModelType) -> ModelTypeError:
    used_for = "chat and completions" if wanted == "llm" else "embeddings"
    return ModelTypeError(f"Model '{model}' is an {actual} model and cannot be used for {used_for}.", param="model")


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

