"""What relaystack persists, as a Protocol. ``storage.sqlite`` is the default implementation."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

__all__ = ["CompletionPage", "KeyStore", "Store", "UsageRow"]


class CompletionPage(dict[str, Any]):
    """``{"object": "list", "data": [...], "has_more": bool, "first_id": str, "last_id": str}``"""


class Store(Protocol):
    async def start(self) -> None:
        """Open the database (creating directories and tables) and start the writer."""

    async def stop(self) -> None:
        """Flush every queued write, then close."""

    # -- stored chat completions ------------------------------------------------------
    async def put_completion(self, completion: dict[str, Any], input_messages: list[Any]) -> None:
        """Store (or replace, same id) one chat completion; returns once it is committed.

        ``completion`` is an OpenAI ``chat.completion`` dict whose ``model`` is the caller's id.
        Writes from many concurrent requests are group-committed by one writer.
        """

    async def put_stream(
        self, completion_id: str, created: int, model: str, events: bytes, input_messages: list[Any]
    ) -> None:
        """Store (or replace) a streamed chat completion as its SSE events (``data: {...}\\n\\n``).

        Reads return it assembled into one ``chat.completion`` (``relaystack.chat_stream``):
        parsing every event is the costliest part of a stream, so it is paid when read.
        """

    async def list_completions(
        self,
        *,
        after: str | None = None,
        limit: int = 20,
        model: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> CompletionPage:
        """Rows ordered by (created, insertion sequence): a cursor never skips rows of the same second.

        Each item is the completion plus ``input_messages``. Unknown ``after`` raises
        ``relaystack.errors.InvalidRequestError``.
        """

    async def get_completion(self, completion_id: str) -> dict[str, Any]:
        """The completion plus ``input_messages``; ``CompletionNotFoundError`` if absent."""

    # -- registered models (shared between workers) ------------------------------------
    async def put_model(self, model: dict[str, Any]) -> None:
        """Persist a model registered through POST /v1/models (keyed by ``identifier``)."""

    async def delete_model(self, identifier: str) -> bool:
        """Forget a registered model; False if it was not there."""

    async def load_models(self) -> list[dict[str, Any]]:
        """Every registered model, as given to ``put_model``."""

    def models_version(self) -> int:
        """A number that changes whenever any process changed the registered models. Cheap."""


# -- virtual keys and usage (the gateway's persistence), a separate part of the contract -------
class UsageRow(NamedTuple):
    """Usage of one (UTC day, key, model, provider): one request's share, or the day's totals.

    ``key_id`` is a virtual key's public id (``"admin"`` for the admin key), never a secret;
    ``model`` is the caller's model id; ``cost`` is in US dollars (0 for the embedded models).
    A named tuple: one is made per request, and a tuple is the cheapest immutable record.
    """

    day: str  # YYYY-MM-DD, UTC
    key_id: str
    model: str
    provider: str
    requests: int = 1
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0


@runtime_checkable
class KeyStore(Protocol):
    """Virtual keys and per-day usage totals, for ``relaystack.gateway``.

    Kept apart from ``Store`` so a backend can add it later: a store without it cannot serve
    ``server.auth`` (start-up says so). A key record is a JSON-able dict keyed by ``id``; it
    never holds a key's secret, only ``secret_hash`` (HMAC-SHA256 under the server secret).
    """

    async def put_key(self, record: dict[str, Any]) -> None:
        """Insert or replace the key ``record["id"]`` (create, update and revoke all come here).

        Returns once committed; every process then sees a new ``keys_version()``.
        """

    async def get_key(self, key_id: str) -> dict[str, Any] | None:
        """The record as last put, or None."""

    async def list_keys(self) -> list[dict[str, Any]]:
        """Every key, revoked and expired ones included, oldest first."""

    def keys_version(self) -> int:
        """A number that changes whenever any process changed any key. Cheap: it is called on
        every authenticated request, so a revoked key fails at once in every worker."""

    def add_usage(self, rows: Sequence[UsageRow]) -> Awaitable[None]:
        """Add requests' usage to the totals of their (day, key_id, model, provider), in one
        write; the returned awaitable completes once it is committed.

        A plain method returning an awaitable (a coroutine or a future): the gateway calls it
        once per event-loop turn for every request that settled in it, from a callback.
        """

    async def usage_totals(self, *, since: str, until: str, key_id: str | None = None) -> list[UsageRow]:
        """Totals per (day, key_id, model, provider) for ``since <= day <= until`` (YYYY-MM-DD),
        optionally for one key, ordered by day, key_id, model, provider."""
