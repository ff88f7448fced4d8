"""Rerank as llama-stack serves it (``POST /v1alpha/inference/rerank``), upstream-neutral.

Request: ``{"model", "query", "items", "max_num_results"?}`` where the query and each item
is a string or a ``{"type": "text", "text"}`` content part (image parts exist in the schema;
no upstream relaystack knows ranks images, so they get a 400). Response:
``{"data": [{"index", "relevance_score"}, ...]}``, most relevant first, at most
``max_num_results`` entries. Providers turn a ``RerankQuery`` into their own upstream call
(vLLM's Jina-style ``/rerank``, NVIDIA's ``/v1/ranking``) and back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from relaystack.errors import InvalidRequestError, UnsupportedParameterError

__all__ = ["RerankQuery", "parse_rerank", "ranked"]


@dataclass(frozen=True, slots=True)
class RerankQuery:
    query: str
    items: list[str]
    max_num_results: int | None = None


def parse_rerank(body: dict[str, Any]) -> RerankQuery:
    """The query and items as text (the API layer already checked the body's shape)."""
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise InvalidRequestError("'items' must be a non-empty list of strings or text parts.", param="items")
    limit = body.get("max_num_results")
    return RerankQuery(
        _text(body.get("query"), "query"),
        [_text(item, f"items[{i}]") for i, item in enumerate(items)],
        limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
    )


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("type") == "text" and isinstance(value.get("text"), str):
            return str(value["text"])
        if value.get("type") == "image_url":
            raise UnsupportedParameterError(
                f"'{where}' is an image: the rerank upstreams relaystack knows rank text only.", param=where
            )
    raise InvalidRequestError(f"'{where}' must be a string or a {{\"type\": \"text\", \"text\"}} part.", param=where)


def ranked(results: Iterable[tuple[int, float]], limit: int | None) -> list[dict[str, Any]]:
    """Most relevant first, ``limit`` at most: llama-stack's answer whatever order the upstream used."""
    ordered = sorted(results, key=lambda pair: pair[1], reverse=True)
    if limit is not None:
        ordered = ordered[:limit]
    return [{"index": index, "relevance_score": score} for index, score in ordered]
