"""Between the API and the providers: which deployment serves a model, and what to do when it fails."""

from relaystack.router.router import Routed, Router

__all__ = ["Routed", "Router"]
