"""The router's counters: the one place metrics read retries, fallbacks and cooldowns from.

Every count is keyed by (model, deployment, event); ``totals()`` sums over models and
deployments. A metrics exporter reads ``Router.stats.counts`` (a ``Counter``) as labelled
counters: ``relaystack_router_events_total{model, deployment, event}``.
Counts live in this process (a metrics exporter sums them over workers, like any counter).

Events:
    attempt    a call to the deployment (the first one of a request, a retry or a fallback)
    failure    an attempt that failed (retryable or not), or a stream that broke mid-way
    retry      an attempt on a deployment this request already tried
    fallback   an attempt on another deployment after a failure
    cooldown   the deployment entered cooldown (K failures, a failed probe, a long Retry-After)
    probe      a half-open probe was sent to the deployment
    skipped    the deployment was passed over because it is cooling down
    exhausted  the request failed after every attempt it was allowed (deployment: the last one)
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

__all__ = ["Event", "RouterStats"]

Event = Literal["attempt", "failure", "retry", "fallback", "cooldown", "probe", "skipped", "exhausted"]


class RouterStats:
    """``counter(model, deployment)`` hands out the one ``Counter`` of a deployment (the router
    keeps it on the deployment, so counting is one dict increment)."""

    __slots__ = ("_by_deployment",)

    def __init__(self) -> None:
        self._by_deployment: dict[tuple[str, str], Counter[str]] = {}

    def counter(self, model: str, deployment: str) -> Counter[str]:
        return self._by_deployment.setdefault((model, deployment), Counter())

    def count(self, model: str, deployment: str, event: Event) -> None:
        self.counter(model, deployment)[event] += 1

    @property
    def counts(self) -> Counter[tuple[str, str, str]]:
        """Every count, keyed by (model, deployment, event)."""
        return Counter({(m, d, e): n for (m, d), c in self._by_deployment.items() for e, n in c.items()})

    def totals(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for counter in self._by_deployment.values():
            out.update(counter)
        return dict(out)

    def of(self, model: str, deployment: str) -> dict[str, int]:
        return dict(self._by_deployment.get((model, deployment), {}))
