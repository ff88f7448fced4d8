"""The router: the one place the API layer (and the front-ends) call to reach a provider.

Today every model has exactly one deployment and a failure is passed to the client as it
came; this is the seam where deployments, retries, fallbacks and cooldowns live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relaystack.context import Operation, RequestContext
from relaystack.providers.base import CallContext, ModelType, Provider, Reply
from relaystack.registry import Registry

__all__ = ["Routed", "Router"]

_MODEL_TYPE: dict[Operation, ModelType] = {
    "chat": "llm", "completion": "llm", "embeddings": "embedding", "rerank": "rerank",
}


@dataclass(slots=True)
class Routed:
    reply: Reply
    call: CallContext
    provider: Provider


class Router:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def send(self, operation: Operation, body: dict[str, Any], ctx: RequestContext) -> Routed:
        """Resolve ``body["model"]``, call the provider, and return its reply.

        Raises ``RelaystackError`` (model not found, wrong type, upstream errors) before any
        byte reached the client; a ``StreamReply`` raises from its iterator once it started.
        """
        model = body["model"]
        provider, call = await self.registry.resolve_fresh(model, _MODEL_TYPE[operation])
        call.provider_data = ctx.provider_data
        call.fault = ctx.fault
        call.api = ctx.api
        ctx.model = model
        ctx.provider_id = provider.provider_id
        ctx.attempts += 1
        reply = await _call(operation, provider, body, call)
        return Routed(reply, call, provider)


async def _call(operation: Operation, provider: Provider, body: dict[str, Any], call: CallContext) -> Reply:
    if operation == "chat":
        return await provider.chat_completion(body, call)
    if operation == "completion":
        return await provider.completion(body, call)
    if operation == "rerank":
        return await provider.rerank(body, call)
    return await provider.embeddings(body, call)
