"""Together AI (``remote::together``): the shared base plus every quirk of Together's API.

| quirk (as llama-stack handles them)                                | what relaystack does                          |
|--------------------------------------------------------------------|-----------------------------------------------|
| Q1 ``GET /models`` is a bare JSON array with a ``type`` per model  | read it; embeddings get their metadata; types  |
|                                                                    | it cannot serve (image, audio, rerank...) skip |
| Q2 embeddings may omit ``usage``                                   | filled with -1 (unknown), like llama-stack     |
| Q3/Q4 embeddings reject ``user`` and ``dimensions``                | 400 before any upstream call                   |
| Q5 ``encoding_format`` (the reference's recordings never send it) | not sent; base64 encoded here when asked       |
| Q6 ``n > 1`` with ``stream: true`` is refused                      | a clear 400 before any upstream call           |
| Q7 usage on the last chunk even when not asked                     | shown only with stream_options.include_usage,  |
|                                                                    | then as OpenAI does: a final chunk, no choices |
| Q8 ``text.completion`` / ``completion.chunk`` object names         | normalised to ``text_completion``              |
"""

from __future__ import annotations

import logging
from typing import Any

from relaystack.errors import InvalidRequestError, UnsupportedParameterError
from relaystack.providers.base import CallContext, ModelEntry
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.providers.sse_relay import RelayRules
from relaystack.providers.stream_usage import usage_rules

__all__ = ["TogetherProvider"]

log = logging.getLogger("relaystack.providers.together")

# Together's "serverless models" docs; the five llama-stack knows.
TOGETHER_EMBEDDING_MODELS: dict[str, dict[str, int]] = {
    "togethercomputer/m2-bert-80M-32k-retrieval": {"embedding_dimension": 768, "context_length": 32768},
    "BAAI/bge-large-en-v1.5": {"embedding_dimension": 1024, "context_length": 512},
    "BAAI/bge-base-en-v1.5": {"embedding_dimension": 768, "context_length": 512},
    "Alibaba-NLP/gte-modernbert-base": {"embedding_dimension": 768, "context_length": 8192},
    "intfloat/multilingual-e5-large-instruct": {"embedding_dimension": 1024, "context_length": 512},
}
_LLM_TYPES = frozenset({"chat", "language", "code"})
_OBJECT_FIXES = (
    (b'"object":"completion.chunk"', b'"object":"text_completion"'),
    (b'"object": "completion.chunk"', b'"object": "text_completion"'),
)


class TogetherProvider(OpenAICompatProvider):
    provider_type = "remote::together"

    def models_from_listing(self, listing: Any) -> list[ModelEntry]:
        if not isinstance(listing, list):  # Together might one day adopt OpenAI's shape
            return super().models_from_listing(listing)
        entries = []
        for item in listing:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            model_id, model_type = item["id"], item.get("type")
            extra = {"context_length": item["context_length"]} if item.get("context_length") else {}
            if model_type == "embedding":
                if model_id not in self.embedding_models:
                    log.debug("Together embedding model %s has no known dimension: skipped.", model_id)
                    continue
                entries.append(self.entry_for(model_id))
            elif model_type in _LLM_TYPES or model_type is None:
                entries.append(self.entry_for(model_id, **extra))
        return entries

    def prepare_chat(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        _refuse_streamed_n(body)
        return super().prepare_chat(body, call)

    def prepare_completion(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        _refuse_streamed_n(body)
        return super().prepare_completion(body, call)

    def prepare_embeddings(self, body: dict[str, Any], call: CallContext) -> dict[str, Any]:
        for field in ("user", "dimensions"):
            if body.get(field) is not None:
                raise UnsupportedParameterError(
                    f"Together's embeddings endpoint does not support '{field}'; remove it from the request.",
                    param=field,
                )
        return {k: v for k, v in body.items() if k != "encoding_format"} | {"model": call.upstream_model}

    def fix_response(self, data: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        if data.get("object") == "text.completion":
            data["object"] = "text_completion"
        return data

    def fix_embeddings_response(self, data: dict[str, Any], call: CallContext) -> dict[str, Any]:
        if not data.get("usage"):
            data["usage"] = {"prompt_tokens": -1, "total_tokens": -1}
        return data

    def relay_rules(self, body: dict[str, Any], call: CallContext) -> RelayRules:
        rules = RelayRules(call.requested_model, replacements=_OBJECT_FIXES if "prompt" in body else ())
        return usage_rules(rules, body)


def _refuse_streamed_n(body: dict[str, Any]) -> None:
    n = body.get("n")
    if body.get("stream") is True and isinstance(n, int) and n > 1:
        raise InvalidRequestError(
            "Together does not support n > 1 when streaming; set stream to false or n to 1.", param="n"
        )
