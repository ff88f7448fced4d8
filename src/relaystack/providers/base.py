"""What every provider is to the rest of relaystack.

A provider turns an OpenAI-shaped request body (a dict, exactly as the client sent it)
into an OpenAI-shaped answer: a ``JsonReply`` or a ``StreamReply``. Remote providers do
it over the upstream seam (``providers.openai_compat``); local ones run an embedded model
(``relaystack.local``). The API layer owns framing, storage and error rendering.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from relaystack.errors import InvalidRequestError, NotImplementedYetError

__all__ = [
    "CallContext",
    "JsonReply",
    "ModelEntry",
    "ModelType",
    "Provider",
    "Reply",
    "StreamReply",
    "sse_event",
]

ModelType = Literal["llm", "embedding", "rerank"]
ModelSource = Literal["config", "listed", "registered", "builtin", "routed"]


@dataclass(slots=True)
class ModelEntry:
    identifier: str  # what clients send in `model`
    provider_id: str
    provider_resource_id: str  # what the upstream calls it
    model_type: ModelType = "llm"
    metadata: dict[str, Any] = field(default_factory=dict)
    source: ModelSource = "config"
    created: int = field(default_factory=lambda: int(time.time()))

    def to_wire(self) -> dict[str, Any]:
        """One shape both the OpenAI SDK and llama-stack-client parse."""
        return {
            "id": self.identifier,
            "object": "model",
            "created": self.created,
            "owned_by": self.provider_id,
            "identifier": self.identifier,
            "provider_id": self.provider_id,
            "provider_resource_id": self.provider_resource_id,
            "type": "model",
            "model_type": self.model_type,
            "metadata": self.metadata,
            "custom_metadata": {
                "model_type": self.model_type,
                "provider_id": self.provider_id,
                "provider_resource_id": self.provider_resource_id,
                **self.metadata,
            },
        }


@dataclass(slots=True)
class CallContext:
    model: ModelEntry
    # the caller's id, echoed in every response (may differ from model.identifier when
    # an unregistered `provider_id/x` was routed)
    requested_model: str
    provider_data: dict[str, Any] | None = None
    fault: str | None = None
    # the API the client spoke (RequestContext.api): "openai", "responses", "messages"
    api: str = "openai"
    # the router's per-deployment connect timeout (routing timeouts.connect_s); None: the provider's own
    connect_timeout_s: float | None = None

    @property
    def upstream_model(self) -> str:
        return self.model.provider_resource_id


@dataclass(slots=True)
class JsonReply:
    data: dict[str, Any]
    status: int = 200


@dataclass(slots=True)
class StreamReply:
    """A stream of framed SSE blocks (``data: {...}\\n\\n``, one or more events per block).

    The iterator ends normally only when the stream really finished (a terminal
    ``finish_reason`` or the upstream's ``[DONE]``); any failure raises a
    ``RelaystackError``, which the API layer turns into an error event. The upstream's
    own ``[DONE]`` is not included: the API layer appends it.
    """

    blocks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]] | None = None
    # events the client was not shown but the stored completion keeps (e.g. usage the
    # upstream sent unasked); read once the blocks are exhausted
    hidden: Callable[[], bytes] | None = None

    async def aclose(self) -> None:
        if self.close is not None:
            await self.close()


Reply = JsonReply | StreamReply


class Provider:
    """Base class: every method a provider does not support answers 501."""

    provider_type: ClassVar[str] = "unknown"

    def __init__(self, provider_id: str) -> None:
        self.provider_id = provider_id

    async def start(self) -> None:
        """Open clients, start loading. Must never fail because an upstream is down."""

    async def stop(self) -> None:
        """Release everything."""

    async def list_models(self) -> list[ModelEntry] | None:
        """Models the provider serves right now; None when it cannot tell (no key, no listing)."""
        return None

    def static_models(self) -> list[ModelEntry]:
        """Models known without asking anyone (built-in defaults)."""
        return []

    @property
    def refresh_interval_s(self) -> float | None:
        """Seconds between discoveries; None disables periodic refresh."""
        return None

    def allows(self, upstream_model: str) -> bool:
        """Whether `allowed_models` lets this upstream model through."""
        return True

    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        raise NotImplementedYetError(f"Provider '{self.provider_id}' does not serve chat completions.")

    async def completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        raise NotImplementedYetError(f"Provider '{self.provider_id}' does not serve completions.")

    async def embeddings(self, body: dict[str, Any], call: CallContext) -> JsonReply:
        raise NotImplementedYetError(f"Provider '{self.provider_id}' does not serve embeddings.")

    async def rerank(self, body: dict[str, Any], call: CallContext) -> JsonReply:
        """llama-stack's rerank: ``{"data": [{"index", "relevance_score"}, ...]}``, best first."""
        raise InvalidRequestError(
            f"Provider '{self.provider_id}' ({self.provider_type}) does not serve rerank.",
            param="model", code="unsupported_operation",
        )

    def secrets(self, call: CallContext | None = None) -> tuple[str, ...]:
        """Every credential value of a call (configured key, per-request key, exchanged tokens,
        signing keys) that must never appear in a response, log line, stored row or recording.
        The redaction layer scrubs what this returns; a provider with credentials overrides it."""
        return ()

    def public_config(self) -> dict[str, Any]:
        """The provider's config with every secret masked."""
        return {}

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}


def sse_event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
