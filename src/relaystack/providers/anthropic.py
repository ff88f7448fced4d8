"""Anthropic (``remote::anthropic``) through its OpenAI SDK compatibility endpoint.

| quirk                                                                | what relaystack does                          |
|----------------------------------------------------------------------|-----------------------------------------------|
| chat at ``https://api.anthropic.com/v1/chat/completions`` (Bearer)   | the shared base                               |
| no ``/completions``, no ``/embeddings``                              | a 400 before any upstream call                |
| ``GET /v1/models`` is Anthropic's own API: ``x-api-key`` and         | listed with those headers, every page         |
| ``anthropic-version`` headers, pages of ``{"data", "has_more",       | (``limit=1000&after_id=...``)                 |
| "last_id"}``                                                         |                                               |
| errors are ``{"type": "error", "error": {"type", "message"}}``       | read by the shared error parser               |
| per-request key                                                      | ``anthropic_api_key``                         |

Config keys: ``api_key``, ``base_url``, ``allowed_models``, ``refresh_models``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from relaystack.errors import UpstreamProtocolError
from relaystack.providers.auth import HeaderAuth
from relaystack.providers.base import ModelEntry
from relaystack.providers.openai_compat import OpenAICompatProvider

__all__ = ["AnthropicProvider"]

_MAX_PAGES = 20
_NATIVE_AUTH = HeaderAuth("x-api-key", "")  # Anthropic's own API (the listing)


class AnthropicProvider(OpenAICompatProvider):
    provider_type = "remote::anthropic"

    async def list_models(self) -> list[ModelEntry] | None:
        if not self.can_list():
            return None
        items = await self._pages()
        entries = [self.entry_for(str(m["id"])) for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)]
        return [e for e in entries if self.allows(e.provider_resource_id)]

    async def _pages(self) -> list[Any]:
        items: list[Any] = []
        after: str | None = None
        for _ in range(_MAX_PAGES):
            query = "?limit=1000" + (f"&after_id={quote(after)}" if after else "")
            page = await self.fetch_json("GET", self.base_url + "/models" + query, None, auth=_NATIVE_AUTH)
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                raise UpstreamProtocolError(f"{self.label}: GET /models did not answer a page of models.")
            items.extend(page["data"])
            after = page.get("last_id") if page.get("has_more") else None
            if not after:
                break
        return items
