"""What relaystack persists, as a Protocol. ``storage.sqlite`` is the default implementation."""

from __future__ import annotations

from typing import Any, Literal, Protocol

__all__ = ["CompletionPage", "Store"]


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
