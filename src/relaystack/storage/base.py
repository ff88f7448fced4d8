"""What relaystack persists, as a Protocol. ``storage.sqlite`` is the default implementation.

Implementations: ``sqlite.SqliteStore`` (default; one file shared by the worker processes of one
machine), ``memory.MemoryStore`` (tests, ``db_path: ":memory:"``) and ``postgres.PostgresStore``
(``storage.backend: postgres``; shared by several instances). ``tests/storage`` runs the same
contract tests against all three.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import orjson

from relaystack.errors import RelaystackError

__all__ = [
    "CompletionPage", "KeyStore", "RenderedResponse", "ResponseStore", "Store", "StoreHealth", "StoredResponse",
    "UsageRow",
]  # fmt: skip


class CompletionPage(dict[str, Any]):
    """``{"object": "list", "data": [...], "has_more": bool, "first_id": str, "last_id": str}``"""


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """The store's state as /v1/health shows it; ``error`` is what a request gets while it is down."""

    backend: str
    error: RelaystackError | None = None
    detail: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "status": "OK" if self.error is None else "unavailable",
                **(self.detail or {})}


class Store(Protocol):
    # True: ``put_completion``/``put_stream`` commit their ``usage`` row in the completion's own
    # transaction (if they raise, neither was written); False: side by side, each on its own
    commits_usage_with_completions: bool

    async def start(self) -> None:
        """Open the database (creating directories and tables) and start the writer."""

    async def stop(self) -> None:
        """Flush every queued write, then close."""

    def health(self) -> StoreHealth:
        """Cheap (no I/O: called per request). A store that knows its database is unreachable
        says so here, so a request that would be stored is refused before the upstream call."""

    # -- stored chat completions ------------------------------------------------------
    async def put_completion(
        self, completion: dict[str, Any], input_messages: list[Any], raw: bytes | None = None,
        usage: UsageRow | None = None,
    ) -> None:
        """Store (or replace, same id) one chat completion; returns once it is committed.

        ``usage``, when given, is the usage row of the request that made it (see ``add_usage``),
        written with it: SQLite and the memory store commit both in one transaction (both or
        neither); PostgreSQL writes them side by side, returning once both committed.

        ``completion`` is an OpenAI ``chat.completion`` dict whose ``model`` is the caller's id;
        ``raw``, when given, is the same completion as JSON bytes (what the client got), stored as
        they are instead of serialising ``completion`` again.
        Writes from many concurrent requests are group-committed by one writer.
        """

    async def put_stream(
        self, completion_id: str, created: int, model: str, events: bytes, input_messages: list[Any],
        usage: UsageRow | None = None,
    ) -> None:
        """Store (or replace) a streamed chat completion as its SSE events (``data: {...}\\n\\n``),
        with its request's ``usage`` as ``put_completion`` does.

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


# -- stored responses (POST /v1/responses), a separate part of the contract ------------------

@dataclass(frozen=True, slots=True)
class RenderedResponse:
    """A ``response`` object already rendered as JSON (the bytes the client got), with the fields a
    row is keyed by: the front-end renders it once, and the store keeps those bytes as they are
    instead of encoding the object again."""

    id: str
    created_at: int
    model: str
    status: str
    json: bytes

    def as_dict(self) -> dict[str, Any]:
        return dict(orjson.loads(self.json))

@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One stored Responses API answer and what continuing it needs."""

    response: dict[str, Any]  # the ``response`` object as the client got it (``id``, ``created_at``, ``model``)
    # the conversation's input items up to this response, chronological: the previous
    # response's items and output, then this request's input (GET .../input_items pages them)
    input_items: list[Any]
    # the chat messages the conversation amounts to, this response's output included (but not
    # its ``instructions``): ``previous_response_id`` continues from exactly these
    messages: list[Any]


@runtime_checkable
class ResponseStore(Protocol):
    """Stored responses, for ``previous_response_id`` and ``GET/DELETE /v1/responses/{id}``.

    Kept apart from ``Store`` so a backend can implement it later: a store without it makes the
    Responses API answer ``store: true`` with a clear error instead of losing the conversation.
    Same ordering and cursor rules as the chat completions: ``(created_at, insertion sequence)``.

    ``owner`` (``server.auth`` on): the id of the key that created a response. Every method
    takes it; on a read, ``None`` means every response (no auth, or the admin key) and a key id
    means only that key's, so another key's response is "not found", never "forbidden".
    """

    def health(self) -> StoreHealth:
        """``Store.health()``: a request that would store a response is refused while it has an error."""

    async def put_response(
        self,
        response: dict[str, Any] | RenderedResponse,
        input_items: list[Any],
        messages: list[Any],
        *,
        owner: str | None = None,
    ) -> None:
        """Store (or replace, same ``response["id"]``) one response; returns once it is committed.
        A ``RenderedResponse`` is stored as its bytes."""

    async def get_response(self, response_id: str, *, owner: str | None = None) -> StoredResponse:
        """The stored response; ``NotFoundError`` (code ``response_not_found``) if absent."""

    async def delete_response(self, response_id: str, *, owner: str | None = None) -> bool:
        """Forget a response; False if it was not there."""

    async def list_responses(
        self,
        *,
        after: str | None = None,
        limit: int = 20,
        model: str | None = None,
        order: Literal["asc", "desc"] = "desc",
        owner: str | None = None,
    ) -> CompletionPage:
        """Response objects (without input items or messages), paged like ``list_completions``.

        Unknown ``after`` raises ``relaystack.errors.InvalidRequestError``.
        """


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
        for each answered request as the answer is stored (or once per event-loop turn for the
        requests that settled in it). A backend may merge the rows of several calls into one
        write, as long as each awaitable completes only once its own rows committed.
        """

    async def usage_totals(self, *, since: str, until: str, key_id: str | None = None) -> list[UsageRow]:
        """Totals per (day, key_id, model, provider) for ``since <= day <= until`` (YYYY-MM-DD),
        optionally for one key, ordered by day, key_id, model, provider."""
