"""A routed model: its deployments ready to call, and the order a request tries them in.

Strategies (``routing.strategy``):
    priority            lowest ``priority`` first, ties in the listed order: ordered fallback
    weighted            a weighted random order (``weight``): the first pick splits the traffic
    least-outstanding   fewest requests in flight in this process first, ties by priority
Cooling deployments are skipped whatever the order (see cooldown.py).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from relaystack.providers.base import ModelEntry, ModelType, Provider
from relaystack.router.policy import Policy
from relaystack.routing_config import TimeoutsConfig

__all__ = ["Plan", "Target"]


@dataclass(slots=True, eq=False)
class Target:
    """One deployment of a routed model, as the router calls it."""

    name: str
    provider: Provider
    entry: ModelEntry
    timeouts: TimeoutsConfig
    weight: float = 1.0
    priority: int = 0
    # the key of its cooldown state: "<model id>|<deployment name>"
    key: str = ""
    # requests in flight on it in this process (streams until they end)
    outstanding: int = 0
    # its events (RouterStats.counter): attempt, failure, retry, fallback, cooldown, probe, skipped...
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def provider_id(self) -> str:
        return self.provider.provider_id


@dataclass(slots=True)
class Plan:
    model: str
    model_type: ModelType
    targets: tuple[Target, ...]  # sorted by priority, ties in the listed order
    policy: Policy
    # a model's only deployment is never cooled down: skipping it would only turn errors into 503s
    cools: bool = field(init=False)
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.targets = tuple(sorted(self.targets, key=lambda t: t.priority))
        self.cools = len(self.targets) > 1
        self.names = tuple(t.name for t in self.targets)

    def order(self, rng: random.Random) -> tuple[Target, ...] | list[Target]:
        targets = self.targets
        if len(targets) == 1:
            return targets
        strategy = self.policy.strategy
        if strategy == "weighted":
            return _weighted_order(targets, rng)
        if strategy == "least-outstanding":
            # sorted() is stable: equal counts keep the priority order
            return sorted(targets, key=lambda t: t.outstanding)
        return targets


def _weighted_order(targets: tuple[Target, ...], rng: random.Random) -> list[Target]:
    """Weighted sampling without replacement: the first pick is ``weight``-proportional, the
    fallbacks follow in a weighted order of their own."""
    remaining = list(targets)
    out: list[Target] = []
    while remaining:
        total = sum(t.weight for t in remaining)
        point = rng.random() * total
        for index, target in enumerate(remaining):
            point -= target.weight
            if point < 0 or index == len(remaining) - 1:
                out.append(remaining.pop(index))
                break
    return out
