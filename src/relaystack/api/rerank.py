"""The request check of ``POST /v1alpha/inference/rerank`` (llama-stack's rerank).

``{"model": str, "query": str | part, "items": [str | part, ...], "max_num_results"?: int >= 1}``,
where a part is ``{"type": "text", "text": str}`` or ``{"type": "image_url", "image_url": {"url"}}``.
Whether a provider can rank images is the provider's call (a 400 from it, before any upstream call).
"""

from __future__ import annotations

from typing import Any

from relaystack.errors import InvalidRequestError

__all__ = ["check_rerank"]

_MAX_ITEMS = 10_000


def _fail(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _check_part(value: Any, where: str) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "text" and isinstance(value.get("text"), str):
            return
        image = value.get("image_url")
        if kind == "image_url" and isinstance(image, dict) and isinstance(image.get("url"), str):
            return
    raise _fail(f"'{where}' must be a string, a {{\"type\": \"text\", \"text\": ...}} part or an image_url part.",
                where)


def check_rerank(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("'model' is required and must be a non-empty string.", "model")
    if "query" not in body:
        raise _fail("'query' is required.", "query")
    _check_part(body["query"], "query")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise _fail("'items' is required and must be a non-empty list.", "items")
    if len(items) > _MAX_ITEMS:
        raise _fail(f"'items' holds {len(items)} entries; at most {_MAX_ITEMS} are ranked in one request.", "items")
    for index, item in enumerate(items):
        _check_part(item, f"items[{index}]")
    limit = body.get("max_num_results")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise _fail("'max_num_results' must be an integer >= 1.", "max_num_results")
    return model
