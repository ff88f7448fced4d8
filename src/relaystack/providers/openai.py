"""OpenAI (``remote::openai``): the shared base plus one fix.

| quirk                                                                | what relaystack does                          |
|----------------------------------------------------------------------|-----------------------------------------------|
| ``max_tokens`` / ``max_completion_tokens`` above a model's output    | clamped to the model's limit (llama-stack's   |
| limit are refused with a 400 ("max_tokens is too large")             | fix), per model family, longest prefix wins   |
| embedding models are listed like chat models                         | typed ``embedding`` with their dimensions     |
|                                                                      | from the catalog row                          |
| per-request key in ``X-LlamaStack-Provider-Data``                    | field ``openai_api_key``                      |

Config keys: ``api_key``, ``base_url`` (``url``), ``allowed_models``, ``refresh_models``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from relaystack.providers.base import CallContext
from relaystack.providers.openai_compat import OpenAICompatProvider

__all__ = ["OPENAI_OUTPUT_LIMITS", "OpenAIProvider", "output_limit"]

# Largest completion per model family (OpenAI's model pages). Longest matching prefix wins.
OPENAI_OUTPUT_LIMITS: dict[str, int] = {
    "gpt-3.5-turbo": 4096,
    "gpt-4": 8192,
    "gpt-4-turbo": 4096,
    "gpt-4o": 16384,
    "gpt-4o-mini": 16384,
    "gpt-4.1": 32768,
    "gpt-5": 128000,
    "o1": 100000,
    "o1-mini": 65536,
    "o3": 100000,
    "o3-mini": 100000,
    "o4-mini": 100000,
}
_BY_LENGTH = sorted(OPENAI_OUTPUT_LIMITS, key=len, reverse=True)


@lru_cache(maxsize=1024)
def output_limit(model: str) -> int | None:
    for prefix in _BY_LENGTH:
        if model == prefix or model.startswith(prefix + "-"):
            return OPENAI_OUTPUT_LIMITS[prefix]
    return None


class OpenAIProvider(OpenAICompatProvider):
    provider_type = "remote::openai"

    def prepare_chat(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return _clamped(super().prepare_chat(body, call), ("max_tokens", "max_completion_tokens"))

    def prepare_completion(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        return _clamped(super().prepare_completion(body, call), ("max_tokens",))


def _clamped(body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    for field in fields:  # a loop, not any(genexpr): this runs on every request
        if field in body:
            break
    else:
        return body
    limit = output_limit(str(body.get("model", "")))
    if limit is None:
        return body
    for field in fields:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            body[field] = limit
    return body
