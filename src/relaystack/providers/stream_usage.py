"""Usage in streams as OpenAI sends it, for upstreams that send it otherwise.

OpenAI puts a stream's usage in one last chunk with no choices, and only when the request
set ``stream_options.include_usage``. Together puts it on the finishing chunk unasked;
Gemini puts it on every chunk. ``usage_rules`` parses only the events that carry usage and:

- when usage was asked for: strips it from content chunks and sends it once, as a chunk
  with no choices right after the finishing chunk;
- when it was not: strips it from what the client sees, and keeps the last usage for the
  stored completion (``RelayRules.hidden``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from relaystack.providers.sse_relay import RelayRules

__all__ = ["USAGE_MARKERS", "usage_rules"]

USAGE_MARKERS = (b'"usage":{', b'"usage": {')


def usage_rules(rules: RelayRules, body: dict[str, Any]) -> RelayRules:
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    rules.needs_parse = (*rules.needs_parse, *USAGE_MARKERS)
    rules.edit_event = _split_usage if include_usage else partial(_hide_usage, rules)
    return rules


def _finishes(event: dict[str, Any]) -> bool:
    choices = event.get("choices")
    return isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") for c in choices)


def _hide_usage(rules: RelayRules, event: dict[str, Any]) -> list[dict[str, Any]]:
    """Unasked usage: not shown to the client; the last one kept for the stored completion."""
    if event.get("usage") and (_finishes(event) or not event.get("choices")):
        rules.hidden[:] = [{"id": event.get("id"), "choices": [], "usage": event["usage"]}]
    event["usage"] = None
    return [event] if event.get("choices") else []


def _split_usage(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Usage on a content chunk moves to its own final chunk, after the finishing one."""
    if not event.get("choices"):
        return [event]
    usage = event.get("usage")
    event["usage"] = None
    if not _finishes(event):
        return [event]
    trailer: dict[str, Any] = {k: event[k] for k in ("id", "object", "created", "model") if k in event}
    return [event, {**trailer, "choices": [], "usage": usage}]
