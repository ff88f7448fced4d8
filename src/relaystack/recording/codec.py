"""The recording file format (llama-stack's, both ways) and the SSE framing around it.

A recording is ``{"request": {...}, "response": {"body": ..., "is_streaming": bool}}``.
Response objects are ``{"__type__": "<openai class path>", "__data__": <object>}`` so that
llama-stack's reader (import the class, ``model_validate``) rebuilds them; a stream is the
list of its chunk objects. ``__data__`` holds the upstream's JSON as it arrived (not a
``model_dump``), so replay gives back exactly what the provider sent, vendor fields included.

The later generation (llama-stack v0.3+) adds a top-level ``"test_id"`` (and an
``"id_normalization_mapping"``, applied when read), and may record a provider error as
``{"body": null, "is_exception": true, "exception_data": {...}, "exception_message": "..."}``
(``exception_data`` as llama-stack's ``serialize_exception``: ``category``, ``type``,
``message``, ``status_code``, ``body``; relaystack adds the exact HTTP ``http_body`` and the
``headers`` a client acts on, such as ``Retry-After``). A stream that broke keeps the chunks
that came before the error. Native Ollama answers are typed as the Ollama SDK's objects.
A non-JSON answer (an image a provider downloaded) is ``{"body": {"content_type", "base64"},
"is_binary": true}``: relaystack's own extension, for calls llama-stack does not record.

Model lists are a list of ``openai.types.model.Model`` objects with ``is_streaming: true``:
that is how llama-stack's recorder stores ``models.list()`` (it drains the page iterator and
replays it by iteration). When the upstream wrapped the list in an envelope
(``{"object": "list", "data": [...]}``) the envelope's other keys are kept under
``response.envelope`` so replay can rebuild the same shape; Together's bare array has none.
llama-stack's later generation drops the envelope (it drains the OpenAI SDK's page), so such a
listing replays as OpenAI's page ``{"object": "list", "data": [...]}``, unless relaystack wrote
it and marked a bare array with ``"envelope": null``. A listing that is neither (OCI's
``{"items": [...]}`` at ``.../models``) is kept as the object it was (``is_streaming: false``).

A stream the upstream ends without ``data: [DONE]`` (watsonx never sends it) is recorded only if
its last event finished (``finish_reason``, or watsonx's ``stop_reason``), with
``"done_event": false`` (relaystack's extension), and replays without ``[DONE]`` too.

SSE is read by ``relaystack.sse`` (the one parser; ``SSECollector`` and ``DONE_EVENT`` are
re-exported here for the recorder).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relaystack.recording.identity import Identity, identity_of_record
from relaystack.sse import DONE_EVENT, SSECollector, frame

__all__ = [
    "DONE_EVENT",
    "ERROR_HEADERS",
    "TYPE_CHAT",
    "TYPE_CHUNK",
    "TYPE_COMPLETION",
    "TYPE_EMBEDDINGS",
    "TYPE_MODEL",
    "Recording",
    "RecordingFormatError",
    "SSECollector",
    "build_binary_response",
    "build_response",
    "compact_json",
    "dump_document",
    "list_key",
    "load_recording",
    "parse_document",
    "sse_event",
    "stream_finished",
    "typed",
    "untyped",
]

TYPE_CHAT = "openai.types.chat.chat_completion.ChatCompletion"
TYPE_CHUNK = "openai.types.chat.chat_completion_chunk.ChatCompletionChunk"
TYPE_COMPLETION = "openai.types.completion.Completion"
TYPE_EMBEDDINGS = "openai.types.create_embedding_response.CreateEmbeddingResponse"
TYPE_MODEL = "openai.types.model.Model"
# the Ollama SDK's objects for its native calls, as llama-stack types them
_NATIVE_TYPES = {"/api/ps": "ollama._types.ProcessResponse", "/api/tags": "ollama._types.ListResponse"}
# the response headers an error keeps: what a client or a router acts on, never a credential
ERROR_HEADERS = ("retry-after", "retry-after-ms", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")


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


def dump_document(
    request: dict[str, Any], response: dict[str, Any], *, per_test: bool = False, test_id: str | None = None
) -> str:
    """llama-stack's on-disk text: ``json.dump(..., indent=2)`` plus a trailing newline.
    ``per_test``: the later generation's document (``test_id`` first, a normalisation map last)."""
    if per_test:
        doc = {"test_id": test_id, "request": request, "response": response, "id_normalization_mapping": {}}
        return json.dumps(doc, indent=2) + "\n"
    return json.dumps({"request": request, "response": response}, indent=2) + "\n"


def type_for(operation: str | None, *, chunk: bool) -> str | None:
    if operation == "/chat/completions":
        return TYPE_CHUNK if chunk else TYPE_CHAT
    if operation == "/completions":
        return TYPE_COMPLETION  # llama-stack types completion chunks as Completion too
    if operation == "/embeddings":
        return TYPE_EMBEDDINGS
    return None


def build_response(
    operation: str | None, payload: Any, *, streaming: bool, endpoint: str = "", done_event: bool = True
) -> dict[str, Any]:
    """The ``response`` object for an upstream answer (a JSON value, or a stream's chunk list;
    ``done_event=False``: a stream the upstream ended without ``[DONE]``)."""
    if streaming:
        chunks = list(payload)
        response = {"body": [typed(type_for(operation, chunk=True), c) for c in chunks], "is_streaming": True}
        if not done_event:
            response["done_event"] = False
        return response
    if operation == "/models" and (isinstance(payload, list) or list_key(payload) == "data"):
        return _model_list_response(payload)
    if operation == "/models" and not isinstance(payload, dict):
        raise RecordingFormatError("a model list must be a JSON array or an object")
    type_name = type_for(operation, chunk=False) or _NATIVE_TYPES.get(endpoint)
    return {"body": typed(type_name, payload), "is_streaming": False}


def build_binary_response(content_type: str, data: bytes) -> dict[str, Any]:
    """A non-JSON answer (a downloaded image), kept byte for byte."""
    body = {"content_type": content_type, "base64": base64.b64encode(data).decode("ascii")}
    return {"body": body, "is_streaming": False, "is_binary": True}


def list_key(page: Any) -> str | None:
    """Which key of a listing object holds its array: OpenAI's ``data``, OCI's ``items``."""
    if isinstance(page, dict):
        for key in ("data", "items"):
            if isinstance(page.get(key), list):
                return key
    return None


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


def stream_finished(chunks: list[Any]) -> bool:
    """Whether a stream that ended without ``[DONE]`` (watsonx never sends it) had finished:
    its last event with choices has a ``finish_reason``, or its last generation result a
    ``stop_reason`` other than ``not_finished`` (watsonx's text generation)."""
    for chunk in reversed(chunks):
        if not isinstance(chunk, dict):
            return False
        choices, results = chunk.get("choices"), chunk.get("results")
        if isinstance(choices, list) and choices:
            return any(isinstance(c, dict) and bool(c.get("finish_reason")) for c in choices)
        if isinstance(results, list) and results:
            reason = results[-1].get("stop_reason") if isinstance(results[-1], dict) else None
            return isinstance(reason, str) and reason != "not_finished"
    return False


@dataclass(slots=True)
class Recording:
    """One parsed recording file."""

    path: Path
    identity: Identity
    is_streaming: bool
    body: Any
    envelope: dict[str, Any] | None = None
    # a model listing that was a bare JSON array on the wire (said by "envelope": null)
    bare_list: bool = False
    # later generation: the document has a top-level "test_id" (its value may be null)
    per_test: bool = False
    # a recorded failure: exception_data (plus "exception_message"), see build_error_response
    exception: dict[str, Any] | None = None
    is_binary: bool = False
    # False: the upstream ended this stream without `data: [DONE]` (replayed the same)
    done_event: bool = True
    _events: list[bytes] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def test_id(self) -> str | None:
        return self.identity.test_id

    @property
    def is_exception(self) -> bool:
        return self.exception is not None

    @property
    def error_status(self) -> int | None:
        """The HTTP status of a recorded error; None for a transport failure."""
        status = self.exception.get("status_code") if self.exception else None
        return status if isinstance(status, int) and 400 <= status <= 599 else None

    def error_body(self) -> Any:
        """The recorded error's HTTP body: as sent when relaystack recorded it, else rebuilt the
        way the OpenAI SDK unwrapped it (``{"error": body}``)."""
        data = self.exception or {}
        if "http_body" in data:
            return data["http_body"]
        body = data.get("body")
        if isinstance(body, dict):
            return {"error": body}
        return {"error": {"message": str(body or data.get("message") or "upstream error"), "type": data.get("type")}}

    def error_headers(self) -> dict[str, str]:
        headers = (self.exception or {}).get("headers")
        if not isinstance(headers, dict):
            return {}
        return {str(k): str(v) for k, v in headers.items() if str(k).lower() in ERROR_HEADERS}

    def error_message(self) -> str:
        data = self.exception or {}
        return str(data.get("message") or data.get("exception_message") or "the recorded call failed")

    def binary(self) -> tuple[str, bytes]:
        """``(content_type, bytes)`` of a binary recording."""
        body = self.body if isinstance(self.body, dict) else {}
        return str(body.get("content_type") or "application/octet-stream"), base64.b64decode(body.get("base64", ""))

    @property
    def operation(self) -> str | None:
        return self.identity.operation

    @property
    def is_model_list(self) -> bool:
        return self.operation == "/models"

    @property
    def replays_as_stream(self) -> bool:
        return self.is_streaming and not self.is_model_list and isinstance(self.body, list)

    @property
    def has_expected_name(self) -> bool:
        """Whether the file is named as llama-stack would look it up (seed: 12 hex; later: the
        64-hex hash with the test id, ``models-<hash>-<digest>`` for listings)."""
        stem = self.path.stem
        if self.per_test:
            wanted = self.identity.per_test_hash
            return stem == wanted or stem.startswith(f"models-{wanted}-")
        return stem == self.identity.short_hash or stem.startswith("models-")

    def items(self) -> list[Any]:
        """Stream chunks / listed models as wire JSON (also from a page object ``{"data": [...]}``)."""
        if isinstance(self.body, list):
            return [untyped(c) for c in self.body]
        page = untyped(self.body)
        key = list_key(page)
        return [untyped(c) for c in page[key]] if key is not None else []

    def wire_json(self) -> Any:
        """The non-stream answer as the upstream sent it."""
        if self.is_model_list:
            items = self.items()
            page = untyped(self.body)
            if isinstance(page, dict):
                key = list_key(page)
                return {**page, key: items} if key is not None else page
            if self.envelope is not None:
                return {**self.envelope, "data": items}
            if self.per_test and not self.bare_list:
                return {"object": "list", "data": items}
            return items
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
    exception = _exception_of(response, path)
    if streaming and not isinstance(body, list) and not (exception and body is None):
        raise RecordingFormatError(f"{path.name}: a streaming response.body must be a list of chunks")
    test_id = doc.get("test_id")
    if test_id is not None and not isinstance(test_id, str):
        raise RecordingFormatError(f"{path.name}: test_id must be a string or null")
    envelope = response.get("envelope")
    return Recording(
        path=path,
        identity=identity_of_record(request, test_id),
        is_streaming=streaming,
        body=body,
        envelope=envelope if isinstance(envelope, dict) else None,
        bare_list="envelope" in response and envelope is None,
        per_test="test_id" in doc,
        exception=exception,
        is_binary=response.get("is_binary") is True and isinstance(body, dict),
        done_event=response.get("done_event") is not False,
    )


def _exception_of(response: dict[str, Any], path: Path) -> dict[str, Any] | None:
    if response.get("is_exception") is not True:
        return None
    data = response.get("exception_data")
    if data is not None and not isinstance(data, dict):
        raise RecordingFormatError(f"{path.name}: response.exception_data must be an object")
    found = dict(data or {})
    message = response.get("exception_message")
    if isinstance(message, str):
        found.setdefault("exception_message", message)
    return found


def load_recording(path: Path) -> Recording:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecordingFormatError(f"{path.name}: not readable JSON ({type(exc).__name__}: {exc})") from exc
    return parse_document(_normalized_ids(doc), path)


def _normalized_ids(doc: Any) -> Any:
    """llama-stack's reader: every original id of ``id_normalization_mapping`` replaced by its
    normalised form, everywhere in the document."""
    mapping = doc.get("id_normalization_mapping") if isinstance(doc, dict) else None
    if not isinstance(mapping, dict) or not mapping:
        return doc
    text = json.dumps(doc)
    for normalized, original in mapping.items():
        if isinstance(normalized, str) and isinstance(original, str) and original:
            text = text.replace(original, normalized)
    fixed = json.loads(text)
    fixed["id_normalization_mapping"] = {}
    return fixed
