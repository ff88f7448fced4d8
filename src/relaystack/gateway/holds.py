"""Budget holds: what a key's requests in flight in this process are estimated to cost.

A budget is checked when a request is admitted, against what the key has spent; a request still
running has spent nothing yet, so without holds any number of requests admitted together would
all pass and spend past the budget together. Each request of a key with a budget holds its
estimated cost from admission until it settles (by then its real cost is in the spend), and a
request is admitted only while spend plus holds is under the budget.

The estimate: the prompt as the request body's size over ``PROMPT_BYTES_PER_TOKEN`` (a body is
JSON around the text: roughly a token per 4 bytes of English; images and long JSON make it an
over-estimate, which holds budget only until the request ends), at the model's input price,
plus the output tokens it asked for at most (``max_tokens``; none asked: none held) at its
output price. What remains (README, "Sharing relaystack with a team"): a budget is overshot by
at most the last admitted request's cost plus what the estimates of the requests then in flight
fell short (a request without ``max_tokens``, a Responses request continuing a stored
conversation), and, with several workers or instances, by what the others have in flight and
spent in the last second (holds are per process; spend is re-read every second).
"""

from __future__ import annotations

from dataclasses import dataclass

from relaystack.gateway.usage import Tokens, fast_tokens

__all__ = ["PROMPT_BYTES_PER_TOKEN", "BudgetHolds", "estimated_cost", "estimated_tokens"]

PROMPT_BYTES_PER_TOKEN = 4


def estimated_tokens(request_bytes: int, max_output_tokens: int | None) -> Tokens:
    """A request's tokens as estimated before it runs (see the module docstring)."""
    return fast_tokens(request_bytes // PROMPT_BYTES_PER_TOKEN, max_output_tokens or 0)


def estimated_cost(request_bytes: int, max_output_tokens: int | None, rates: tuple[float, float]) -> float:
    """``Pricing.cost`` of ``estimated_tokens`` at the model's (input, output) dollars per
    million tokens (``Pricing.uncached_rates``, looked up once per key and model)."""
    return ((request_bytes // PROMPT_BYTES_PER_TOKEN) * rates[0] + (max_output_tokens or 0) * rates[1]) / 1_000_000


@dataclass(slots=True)
class Held:
    usd: float = 0.0
    requests: int = 0


_NOTHING = Held()


class BudgetHolds:
    """Per key, the dollars held by its requests in flight, and how many they are."""

    def __init__(self) -> None:
        self._held: dict[str, Held] = {}

    def held(self, key_id: str) -> Held:
        """What ``key_id``'s requests hold now (read it, never change it: it may be shared)."""
        return self._held.get(key_id, _NOTHING)

    def hold(self, key_id: str, usd: float) -> None:
        held = self._held.get(key_id)
        if held is None:
            held = self._held[key_id] = Held()
        held.usd += usd
        held.requests += 1

    def take(self, key_id: str, spent: float, max_usd: float, usd: float) -> bool:
        """Hold ``usd`` for one more request of ``key_id`` when ``spent`` plus what its requests
        in flight hold is under ``max_usd`` (nothing held when ``usd`` is 0); False: refused,
        nothing held. The admission's hot path: one lookup, where ``held`` then ``hold`` take two."""
        held = self._held.get(key_id)
        if held is None:
            if spent >= max_usd:
                return False
            if usd > 0:
                self._held[key_id] = Held(usd, 1)
            return True
        if spent + held.usd >= max_usd:
            return False
        if usd > 0:
            held.usd += usd
            held.requests += 1
        return True

    def release(self, key_id: str, usd: float) -> None:
        held = self._held.get(key_id)
        if held is None:
            return
        held.requests -= 1
        held.usd -= usd
        if held.requests <= 0:  # the last one: drop the entry (and the sum's float rounding with it)
            del self._held[key_id]
