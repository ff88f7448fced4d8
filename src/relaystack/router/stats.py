"""The router's counters: the one place metrics read retries, fallbacks and cooldowns from.

Every count is keyed by (model, deployment, event); ``totals()`` sums over models and
deployments. A metrics exporter reads ``Router.stats.counts`` (a ``Counter``) as labelled
counters: ``relaystack_router_events_total{model, deployment, event}``.

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
    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def count(self, model: str, deployment: str, event: Event) -> None:
        self.counts[(model, deployment, event)] += 1

    def totals(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_, _, event), n in self.counts.items():
            out[event] += n
        return dict(out)

    def of(self, model: str, deployment: str) -> dict[str, int]:
        return {event: n for (m, d, event), n in self.counts.items() if m == model and d == deployment}
