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

import orjson

from relaystack import sse
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
    # the gateway accounts tokens: a stream asks its upstream for usage even if the client did not
    # (see ``RequestContext.usage_wanted``); the client's stream stays as it asked
    usage_wanted: bool = False
    # set by the provider: the client's own body asked for stream usage
    client_asked_usage: bool = False

    @property
    def upstream_model(self) -> str:
        return self.model.provider_resource_id


class JsonReply:
    """A JSON answer: ``data``, the object, and ``status``.

    An answer relayed as the upstream's own bytes also carries ``raw``: exactly what the client
    gets (the caller's model id already in place), sent without a re-serialisation. Its ``data``
    is then parsed only if someone reads it (a front-end translating it, a secret found in it),
    and ``usage`` comes with it, read from the few bytes around the payload that hold it.
    """

    __slots__ = ("_data", "_usage", "raw", "status")

    def __init__(self, data: dict[str, Any] | None = None, status: int = 200, *, raw: bytes | None = None,
                 usage: dict[str, Any] | None = None) -> None:
        if data is None and raw is None:
            raise ValueError("a JsonReply needs data or raw bytes")
        self._data = data
        self.raw = raw
        self.status = status
        self._usage = usage

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self.raw is not None
            parsed = orjson.loads(self.raw)
            self._data = parsed if isinstance(parsed, dict) else {}
        return self._data

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        self._data = value
        self.raw = None  # the object changed: its bytes are no longer the answer

    @property
    def usage(self) -> dict[str, Any] | None:
        """The answer's usage object, None if it has none (read without parsing ``raw``)."""
        if self._usage is None and self._data is not None:
            usage = self._data.get("usage")
            return usage if isinstance(usage, dict) else None
        return self._usage

    def __repr__(self) -> str:
        return f"JsonReply(status={self.status}, raw={len(self.raw) if self.raw is not None else None} bytes)"


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
    # the usage object of the stream's last usage-carrying chunk (shown to the client or not)
    final_usage: Callable[[], dict[str, Any] | None] | None = None
    # the hidden events -> the form the store keeps of the blocks yielded, then them
    # (``relaystack.stored_stream``: text events packed), taken as the blocks went by; None: the
    # consumer keeps the blocks and stores them as they are. A wrapper passes ``blocks`` on unchanged.
    stored_form: Callable[[bytes], bytes] | None = None
    # called by a consumer that will not store the stream: nothing is kept for ``stored_form``
    forgo_stored: Callable[[], None] | None = None
    # True once the upstream said [DONE]: the block just yielded is the stream's last (the API layer
    # may then write it with its own [DONE] and the response's end, in one write)
    ended: Callable[[], bool] | None = None

    @property
    def usage(self) -> dict[str, Any] | None:
        """The stream's usage, None if no chunk carried any. Read after the blocks are exhausted."""
        return self.final_usage() if self.final_usage is not None else None

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

    def listing_adopted(self, entries: list[ModelEntry]) -> None:
        """Another worker process listed these models at start-up (``--workers N`` list once,
        ``relaystack.shared_discovery``): a provider that learns something from its own listing
        learns it here."""

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

    def public_config(self) -> dict[str, Any]:
        """The provider's config with every secret masked."""
        return {}

    def secrets(self, call: CallContext | None = None) -> tuple[str, ...]:
        """Every secret a call (``None``: any call) sends or signs with, so none is ever passed on.

        The one place a provider declares its secrets: the configured key, a per-request key
        from ``X-LlamaStack-Provider-Data``, a token obtained by exchanging a credential, a
        signing secret (an ``Auth`` scheme reports what it derived through ``Auth.secrets()``).
        One list feeds every scrubber: the recorder (``UpstreamRequest.secrets``), the stream
        relay and upstream error fields, and the request's ``Redactor`` (responses, stored rows,
        log lines), all with one mask (``relaystack.redaction``). Called per call (and once with
        ``None`` at start-up, for the process-wide redactor): keep it cheap.
        """
        return ()

    async def health(self) -> dict[str, Any]:
        """llama-stack's provider health (``GET /v1/providers``): may ask the upstream (Ollama's
        ``/api/ps``). ``GET /v1/health`` never calls it: it shows ``status()``."""
        return self.status()

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/health`` shows of this provider beside its last discovery and request
        outcome (``health.py``): without any I/O, so a probe is free. ``OK``, or a local engine's
        loading state."""
        return {"status": "OK"}


def sse_event(payload: bytes) -> bytes:
    return sse.frame(payload)
