"""Rows and paging helpers shared by the storage tests (imported by name: tests/storage is on sys.path)."""

from __future__ import annotations

from typing import Any

from relaystack.storage.base import Store


def completion(cid: str, created: int = 1_700_000_000, model: str = "m", text: str = "hi") -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


def messages(text: str = "hello") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def page_through(store: Store, *, limit: int, order: str, model: str | None = None) -> list[str]:
    """Follow ``after=last_id`` until ``has_more`` is false; check each page's envelope on the way."""
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await store.list_completions(after=after, limit=limit, order=order, model=model)  # type: ignore[arg-type]
        ids = [item["id"] for item in page["data"]]
        assert page["object"] == "list"
        assert len(ids) <= limit
        assert page["first_id"] == (ids[0] if ids else "")
        assert page["last_id"] == (ids[-1] if ids else "")
        assert not set(ids) & set(seen), f"page after {after!r} repeats rows: {sorted(set(ids) & set(seen))}"
        seen.extend(ids)
        if not page["has_more"]:
            return seen
        assert len(ids) == limit  # has_more with a short page would be a lie
        after = page["last_id"]
