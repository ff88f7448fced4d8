"""relaystack: an OpenAI- and llama-stack-compatible inference server."""

__version__ = "0.1.0"

__all__ = ["__version__"]
