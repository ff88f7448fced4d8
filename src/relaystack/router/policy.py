"""What the router does after a failed attempt: retry the deployment, fall back, or give up.

``Policy`` is a model's ``RoutingConfig`` compiled for the request path: which failures are
worth another attempt, how long to wait before it (exponential backoff with full jitter, or the
upstream's ``Retry-After`` up to a cap), and the timeouts of each attempt.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from relaystack.config import RunConfig
from relaystack.errors import (
    InvalidRequestError,
    RelaystackError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from relaystack.router.cooldown import CooldownRule
from relaystack.routing_config import BackoffConfig, RoutingConfig, Strategy, TimeoutsConfig, resolve_routing

__all__ = ["Failure", "Policy", "RouterSettings", "classify", "fault_for", "retry_after_s"]

# a Retry-After longer than this is treated as "not today": the deployment is held this long at most
_MAX_HOLD_S = 3600.0


@dataclass(frozen=True, slots=True)
class Failure:
    """How the router reads one failed attempt."""

    # "connect", "timeout" or the HTTP status; None: not an upstream failure (never retried)
    kind: str | int | None
    retry_after: float | None = None
    # a 429 that says the account is out of credit: another key may serve, this one will not
    quota: bool = False


def classify(exc: RelaystackError) -> Failure:
    """Only failures of the upstream count: a replay miss, a missing key or a local model's 503
    are answers about this server, not about a deployment's health."""
    if isinstance(exc, UpstreamConnectionError):
        return Failure("connect")
    if isinstance(exc, UpstreamTimeoutError):
        return Failure("timeout")
    if isinstance(exc, UpstreamError | UpstreamProtocolError):
        status = exc.status_code
        return Failure(status, retry_after_s(exc.headers), quota=status == 429 and exc.code == "insufficient_quota")
    return Failure(None)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date) as seconds, if given and sane."""
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "retry-after-ms":
            try:
                return max(0.0, float(value) / 1000.0)
            except ValueError:
                continue
    for name, value in headers.items():
        if name.lower() != "retry-after":
            continue
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            seconds = when.timestamp() - time.time()
        return max(0.0, seconds) if math.isfinite(seconds) else None
    return None


@dataclass(frozen=True, slots=True)
class Policy:
    strategy: Strategy
    retries: int
    retry_on: frozenset[str | int]
    backoff: BackoffConfig
    retry_after_max_s: float
    deadline_s: float | None
    timeouts: TimeoutsConfig
    cooldown: CooldownRule

    @classmethod
    def from_config(cls, cfg: RoutingConfig) -> Policy:
        retry_on: set[str | int] = set()
        for item in cfg.retry_on:
            if item == "5xx":
                retry_on.update(range(500, 600))
            else:
                retry_on.add(item)
        rule = CooldownRule(cfg.cooldown.failures, cfg.cooldown.window_s, cfg.cooldown.cooldown_s)
        return cls(cfg.strategy, cfg.retries, frozenset(retry_on), cfg.backoff, cfg.retry_after_max_s,
                   cfg.deadline_s, cfg.timeouts, rule)

    def counts(self, failure: Failure) -> bool:
        """A failure that says something about the deployment: worth the next one, and counted
        towards its cooldown."""
        return failure.kind is not None and failure.kind in self.retry_on

    def may_retry_same(self, failure: Failure) -> bool:
        return self.counts(failure) and not failure.quota

    def delay_s(self, retry: int, failure: Failure, rng: random.Random) -> float | None:
        """Seconds to wait before the ``retry``-th retry (1-based) of the same deployment; None when
        the upstream asked for a longer pause than ``retry_after_max_s`` (go elsewhere instead)."""
        if failure.retry_after is not None:
            return failure.retry_after if failure.retry_after <= self.retry_after_max_s else None
        ceiling = min(self.backoff.max_s, self.backoff.initial_s * self.backoff.multiplier ** (retry - 1))
        return rng.uniform(0.0, ceiling)

    def hold_s(self, failure: Failure) -> float | None:
        """How long a Retry-After beyond the cap keeps the deployment aside (None: no hold)."""
        if failure.retry_after is None or failure.retry_after <= self.retry_after_max_s:
            return None
        return min(failure.retry_after, _MAX_HOLD_S)


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """The routing config of a whole run.yaml: the global section (None: plain models are relayed
    without routing) and each model's resolved routing."""

    default: RoutingConfig | None = None
    per_model: Mapping[str, RoutingConfig] | None = None
    # every deployment's own timeouts (over its model's): the router's timer ticks by the shortest
    deployment_timeouts: tuple[TimeoutsConfig, ...] = ()

    @classmethod
    def from_config(cls, config: RunConfig) -> RouterSettings:
        per_model = {
            m.model_id: resolve_routing(config.routing, m.routing)
            for m in config.models
            if m.model_id and (m.routing is not None or m.deployments is not None)
        }
        timeouts = tuple(d.timeouts for m in config.models for d in m.deployments or () if d.timeouts)
        return cls(config.routing, per_model, timeouts)

    def for_model(self, model: str) -> RoutingConfig | None:
        if self.per_model and model in self.per_model:
            return self.per_model[model]
        return self.default


def fault_for(spec: str | None, deployment: str, known: tuple[str, ...] | None = None) -> str | None:
    """The part of an ``X-Relaystack-Fault`` spec that applies to ``deployment``.

    ``deployment=NAME;status=503`` applies ``status=503`` to that deployment only; a spec
    without ``deployment=`` applies to every attempt. ``known``: the model's deployment names,
    so a misspelt name is a 400 rather than a fault that silently never fires."""
    if spec is None or "deployment" not in spec.lower():
        return spec
    target: str | None = None
    rest: list[str] = []
    for item in spec.split(";"):
        key, sep, value = item.partition("=")
        if sep and key.strip().lower() == "deployment":
            target = value.strip()
        elif item.strip():
            rest.append(item.strip())
    if target is None:
        return spec
    if known is not None and target not in known:
        raise InvalidRequestError(
            f"X-Relaystack-Fault names deployment '{target}', but this model's deployments are "
            f"{', '.join(known)}.", param="X-Relaystack-Fault", code="invalid_fault_spec",
        )
    if target != deployment:
        return None
    return ";".join(rest) or None
