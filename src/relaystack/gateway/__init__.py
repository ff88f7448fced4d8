"""Who may call, how much, and what it cost: auth, limits and usage as one layer."""

from relaystack.gateway.gate import Gate, OpenGate

__all__ = ["Gate", "OpenGate"]
