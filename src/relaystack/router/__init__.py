"""Between the API and the providers: which deployment serves a model, and what to do when it fails."""

from relaystack.router.cooldown import CooldownState, InProcessCooldowns
from relaystack.router.policy import RouterSettings
from relaystack.router.router import Routed, Router
from relaystack.router.stats import RouterStats

__all__ = ["CooldownState", "InProcessCooldowns", "Routed", "Router", "RouterSettings", "RouterStats"]
