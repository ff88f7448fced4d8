"""The recording file format (llama-stack's, both ways) and the SSE framing around it.

A recording is ``{"request": {...}, "response": {"body": ..., "is_streaming": bool}}``.
Response objects are ``{"__type__": "<openai class path>", "__data__": <object>}`` so that
llama-stack's reader (import the class, ``model_validate``) rebuilds them; a stream is the
list of its chunk objects. ``__data__`` holds the upstream's JSON as it arrived (not a
``model_dump``), so replay gives back exactly what the provider sent, vendor fields included.

Model lists are a list of ``openai.types.model.Model`` objects with ``is_streaming: true``:
that is how llama-stack's recorder stores ``models.list()`` (it drains the page iterator and
replays it by iteration). When the upstream wrapped the list in an envelope
(``{"object": "list", "data": [...]}``) the envelope's other keys are kept under
``response.envelope`` so replay can rebuild the same shape; Together's bare array has none.

SSE is read by ``relaystack.sse`` (the one parser; ``SSECollector`` and ``DONE_EVENT`` are
re-exported here for the recorder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relaystack.recording.identity import Identity, identity_of_record
from relaystack.sse import DONE_EVENT, SSECollector, frame

__all__ = [
    "DONE_EVENT",
    "TYPE_CHAT",
    "TYPE_CHUNK",
    "TYPE_COMPLETION",
    "TYPE_EMBEDDINGS",
    "TYPE_MODEL",
    "Recording",
    "RecordingFormatError",
    "SSECollector",
    "build_response",
    "compact_json",
    "dump_document",
    "load_recording",
    "parse_document",
    "sse_event",
    "typed",
    "untyped",
]

TYPE_CHAT = "openai.types.chat.chat_completion.ChatCompletion"
TYPE_CHUNK = "openai.types.chat.chat_completion_chunk.ChatCompletionChunk"
TYPE_COMPLETION = "openai.types.completion.Completion"
TYPE_EMBEDDINGS = "openai.types.create_embedding_response.CreateEmbeddingResponse"
TYPE_MODEL = "openai.types.model.Model"


class RecordingFormatError(ValueError):
    """A recording file that is not in the format (message names the file and the problem)."""


def typed(type_name: str | None, data: Any) -> Any:
    return {"__type__": type_name, "__data__": data} if type_name else data


def untyped(obj: Any) -> Any:
    """The wire JSON inside a serialized object (llama-stack's fallback: the object itself)."""
    if isinstance(obj, dict) and "__type__" in obj and "__data__" in obj:
        return obj["__data__"]
    return obj


def compact_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sse_event(obj: Any) -> bytes:
    return frame(compact_json(obj))


def dump_document(request: dict[str, Any], response: dict[str, Any]) -> str:
    """llama-stack's on-disk text: ``json.dump(..., indent=2)`` plus a trailing newline."""
    return json.dumps({"request": request, "response": response}, indent=2) + "\n"


def _type_for(operation: str | None, *, chunk: bool) -> str | None:
    if operation == "/chat/completions":
        return TYPE_CHUNK if chunk else TYPE_CHAT
    if operation == "/completions":
        return TYPE_COMPLETION  # llama-stack types completion chunks as Completion too
    if operation == "/embeddings":
        return TYPE_EMBEDDINGS
    return None


def build_response(operation: str | None, payload: Any, *, streaming: bool) -> dict[str, Any]:
    """The ``response`` object for an upstream answer (a JSON value, or a stream's chunk list)."""
    if streaming:
        chunks = list(payload)
        return {"body": [typed(_type_for(operation, chunk=True), c) for c in chunks], "is_streaming": True}
    if operation == "/models":
        return _model_list_response(payload)
    return {"body": typed(_type_for(operation, chunk=False), payload), "is_streaming": False}


def _model_list_response(payload: Any) -> dict[str, Any]:
    envelope: dict[str, Any] | None = None
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        envelope = {k: v for k, v in payload.items() if k != "data"}
        items = payload["data"]
    elif isinstance(payload, list):
        items = payload
    else:
        raise RecordingFormatError("a model list must be a JSON array or an object with a 'data' array")
    response: dict[str, Any] = {"body": [typed(TYPE_MODEL, m) for m in items], "is_streaming": True}
    if envelope is not None:
        response["envelope"] = envelope
    return response


@dataclass(slots=True)
class Recording:
    """One parsed recording file."""

    path: Path
    identity: Identity
    is_streaming: bool
    body: Any
    envelope: dict[str, Any] | None = None
    _events: list[bytes] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def operation(self) -> str | None:
        return self.identity.operation

    @property
    def is_model_list(self) -> bool:
        return self.operation == "/models"

    @property
    def replays_as_stream(self) -> bool:
        return self.is_streaming and not self.is_model_list and isinstance(self.body, list)

    def items(self) -> list[Any]:
        """Stream chunks / listed models as wire JSON (also from a page object ``{"data": [...]}``)."""
        if isinstance(self.body, list):
            return [untyped(c) for c in self.body]
        page = untyped(self.body)
        if isinstance(page, dict) and isinstance(page.get("data"), list):
            return [untyped(c) for c in page["data"]]
        return []

    def wire_json(self) -> Any:
        """The non-stream answer as the upstream sent it."""
        if self.is_model_list:
            items = self.items()
            page = untyped(self.body)
            if isinstance(page, dict):
                return {**page, "data": items}
            return {**self.envelope, "data": items} if self.envelope is not None else items
        if isinstance(self.body, list):
            return self.items()
        return untyped(self.body)

    def sse_events(self) -> list[bytes]:
        """One ``data: {...}\\n\\n`` per recorded chunk (no ``[DONE]``), built once."""
        if self._events is None:
            self._events = [sse_event(c) for c in self.items()]
        return self._events


def parse_document(doc: Any, path: Path) -> Recording:
    if not isinstance(doc, dict) or not isinstance(doc.get("request"), dict):
        raise RecordingFormatError(f"{path.name}: no 'request' object")
    response = doc.get("response")
    if not isinstance(response, dict) or "body" not in response:
        raise RecordingFormatError(f"{path.name}: no 'response.body'")
    request = doc["request"]
    for key in ("method", "url"):
        if not isinstance(request.get(key), str):
            raise RecordingFormatError(f"{path.name}: request.{key} must be a string")
    if not isinstance(request.get("body", {}), dict):
        raise RecordingFormatError(f"{path.name}: request.body must be an object")
    streaming = response.get("is_streaming", False)
    if not isinstance(streaming, bool):
        raise RecordingFormatError(f"{path.name}: response.is_streaming must be true or false")
    body = response["body"]
    if streaming and not isinstance(body, list):
        raise RecordingFormatError(f"{path.name}: a streaming response.body must be a list of chunks")
    envelope = response.get("envelope")
    return Recording(
        path=path,
        identity=identity_of_record(request),
        is_streaming=streaming,
        body=body,
        envelope=envelope if isinstance(envelope, dict) else None,
    )


def load_recording(path: Path) -> Recording:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecordingFormatError(f"{path.name}: not readable JSON ({type(exc).__name__}: {exc})") from exc
    return parse_document(doc, path)
