"""The record and replay ``Upstream`` wrappers, and ``wrap_upstream`` that picks one.

Record: every request goes to the real upstream; a 2xx answer is relayed to the caller as
it arrives and written (scrubbed, atomically) once its body ended normally. Streams without
``[DONE]`` and in-band error events are never written. Failures depend on the format
(layout.RecordingFormat): the seed format writes none (llama-stack <= 0.2 would replay any
file as a success); the per-test format writes an upstream error status, a refused or timed
out call and a stream that broke off as llama-stack's ``is_exception`` recordings
(failures.py), so a recorded outage replays deterministically, but never over a recorded
success. A non-JSON answer to a call that is not an OpenAI operation (an image an adapter
downloads) is kept byte for byte.

Replay: the inner upstream is never called. A request is answered from the recording that
matches it (method, path, canonical body and the test id the client sent; see identity.py
and store.py), a recorded error as the same status, body and ``Retry-After``, a recorded
transport failure as the same failure, or fails with ``ReplayMissError`` naming the request,
the file that would match and how to record it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from relaystack.errors import (
    ConfigError,
    InvalidRequestError,
    RelaystackError,
    ReplayMissError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from relaystack.recording import faults
from relaystack.recording.codec import (
    Recording,
    RecordingFormatError,
    build_binary_response,
    build_response,
    compact_json,
    list_key,
    stream_finished,
)
from relaystack.recording.failures import build_error_response, build_transport_error_response
from relaystack.recording.faults import FaultSpec, fault_error_body
from relaystack.recording.identity import Identity, identity_of_request
from relaystack.recording.layout import RecordingFormat
from relaystack.recording.nearest import nearest_recording
from relaystack.recording.redact import SecretSet, secrets_of_request
from relaystack.recording.responses import Capture, CapturingResponse, ReplayResponse
from relaystack.recording.settings import RecordingSettings, RecordMode
from relaystack.recording.store import RecordingSecretError, RecordingStore
from relaystack.recording.testid import current_test_id
from relaystack.upstream.base import Upstream, UpstreamRequest, UpstreamResponse

__all__ = ["RecordingUpstream", "ReplayingUpstream", "recording_store", "wrap_upstream"]

log = logging.getLogger("relaystack.recording")

# distinct missed requests remembered (so each is logged once); the oldest is forgotten past it
_MISSES_KEPT = 1024
RECORD_HINT = (
    "To record it, run the server with `relaystack run --record-mode record ...` (or the test suite "
    "with `pytest --record-mode=record`) against the real provider, with its API key set."
)


def recording_store(settings: RecordingSettings) -> RecordingStore | None:
    """The recordings folder of a process (None in live mode), for every ``wrap_upstream`` of it:
    one index, built once, however many providers share the folder."""
    return None if settings.mode is RecordMode.LIVE else RecordingStore(settings.directory, settings.format)


def wrap_upstream(inner: Upstream, settings: RecordingSettings, store: RecordingStore | None = None) -> Upstream:
    """The upstream the providers should use: ``inner`` itself in live mode (zero cost).
    ``store``: the process's ``recording_store`` (without it, a store of this upstream's own)."""
    if settings.mode is RecordMode.LIVE:
        return inner
    store = store or RecordingStore(settings.directory, settings.format)
    if settings.mode is RecordMode.RECORD:
        return RecordingUpstream(inner, store)
    if not settings.directory.is_dir():
        raise ConfigError(
            f"Replay mode needs a recordings directory, and {settings.directory} does not exist. "
            "Point RELAYSTACK_RECORDINGS_DIR (or `relaystack run --recordings`, `pytest --recordings-dir`) at "
            "a folder holding responses/*.json, or record first with --record-mode record."
        )
    return ReplayingUpstream(inner, store, used_log=settings.used_log)


def _identify(request: UpstreamRequest) -> tuple[Identity, SecretSet]:
    """The request's identity (with the test id of the request being served) with its own
    credentials scrubbed from the body, and those credentials."""
    secrets = SecretSet(secrets_of_request(request))
    identity = identity_of_request(request, current_test_id())
    body = secrets.scrub(identity.body)
    if body != identity.body:
        identity = dataclasses.replace(identity, body=body)
    return identity, secrets


def _is_stream(request: UpstreamRequest, headers: Any) -> bool:
    content_type = str(headers.get("content-type", "") or headers.get("Content-Type", "")).lower()
    if "text/event-stream" in content_type:
        return True
    if "json" in content_type:
        return False
    return request.stream


def _describe(request: UpstreamRequest, identity: Identity) -> str:
    """The request as a log line or a miss names it: method, path, identifying query, model."""
    model = f" (model '{identity.model}')" if identity.model else ""
    query = f"?{identity.query}" if identity.query else ""
    return f"{request.method.upper()} {urlsplit(request.url).path}{query}{model}"


class RecordingUpstream:
    """Forwards to the real upstream and writes what came back."""

    def __init__(self, inner: Upstream, store: RecordingStore) -> None:
        self._inner = inner
        self.store = store
        self.written: list[Path] = []

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if request.fault:
            raise InvalidRequestError(
                "X-Relaystack-Fault is only honoured in replay mode; this server is recording.",
                param="X-Relaystack-Fault",
                code="fault_injection_disabled",
            )
        identity, secrets = _identify(request)
        keep_failures = self.store.format is RecordingFormat.PER_TEST
        try:
            response = await self._inner.send(request)
        except (UpstreamConnectionError, UpstreamTimeoutError) as exc:
            if keep_failures:
                await self._save(request, identity, secrets, _transport_failure(exc, identity))
            raise
        if not 200 <= response.status < 300:
            if not keep_failures:
                log.warning(
                    "record: not recording %s: the upstream answered %d (the seed format records no "
                    "errors: record with --recording-format per-test, or use a fault such as 'status=%d')",
                    _describe(request, identity), response.status, response.status,
                )
                return response
            raw = await response.read()
            await self._save(request, identity, secrets, build_error_response(response.status, response.headers, raw))
            return ReplayResponse(response.status, response.headers, [raw], stream=False)
        streaming = _is_stream(request, response.headers)
        content_type = str(response.headers.get("content-type", "") or "")

        async def complete(capture: Capture) -> None:
            await self._write(request, identity, secrets, capture, content_type)

        async def failed(capture: Capture, exc: RelaystackError) -> None:
            await self._save(request, identity, secrets, _transport_failure(exc, identity, capture))

        return CapturingResponse(
            response, streaming=streaming, on_complete=complete, on_failure=failed if keep_failures else None
        )

    async def _write(
        self, request: UpstreamRequest, identity: Identity, secrets: SecretSet, cap: Capture, content_type: str
    ) -> None:
        what = _describe(request, identity)
        try:
            if _is_binary(identity, cap, content_type):
                response = build_binary_response(content_type.split(";")[0].strip(), cap.body)
            else:
                response = build_response(
                    identity.operation, _payload(cap), streaming=cap.streaming, endpoint=identity.endpoint,
                    done_event=cap.done or not cap.streaming,
                )
        except _NotRecordable as exc:
            log.warning("record: not recording %s: %s", what, exc)
            return
        except RecordingFormatError as exc:
            log.error("record: could not write the recording of %s: %s", what, exc)
            return
        await self._save(request, identity, secrets, response)

    async def _save(
        self, request: UpstreamRequest, identity: Identity, secrets: SecretSet, response: dict[str, Any]
    ) -> None:
        what = _describe(request, identity)
        try:
            path = await asyncio.to_thread(self.store.write, identity, response, secrets)
        except (RecordingFormatError, RecordingSecretError, OSError) as exc:
            log.error("record: could not write the recording of %s: %s", what, exc)
            return
        if path is not None:
            self.written.append(path)
            log.info("record: %s -> %s", what, path)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _NotRecordable(Exception):
    pass


def _is_binary(identity: Identity, cap: Capture, content_type: str) -> bool:
    """A non-JSON answer to a call that is not an OpenAI operation (an image download)."""
    if cap.streaming or identity.operation is not None:
        return False
    kind = content_type.split(";")[0].strip().lower()
    return bool(kind) and "json" not in kind and not kind.startswith("text/event-stream")


def _transport_failure(exc: RelaystackError, identity: Identity, cap: Capture | None = None) -> dict[str, Any]:
    chunks = None
    if cap is not None and cap.streaming:
        chunks = []
        for payload in cap.payloads:
            try:
                chunks.append(json.loads(payload))
            except ValueError:
                break
    return build_transport_error_response(
        exc.message, timeout=isinstance(exc, UpstreamTimeoutError), operation=identity.operation, chunks=chunks
    )


def _payload(cap: Capture) -> Any:
    if not cap.streaming:
        try:
            return json.loads(cap.body)
        except ValueError:
            raise _NotRecordable("the body is not JSON") from None
    try:
        chunks = [json.loads(p) for p in cap.payloads]
    except ValueError:
        raise _NotRecordable("the stream carried a malformed (non-JSON) event") from None
    if any(isinstance(c, dict) and "error" in c for c in chunks):
        raise _NotRecordable("the stream carried an in-band error event")
    if not cap.done and not stream_finished(chunks):
        raise _NotRecordable("the stream ended without [DONE] before it finished")
    return chunks


class ReplayingUpstream:
    """Answers from recordings; never calls the inner upstream."""

    def __init__(self, inner: Upstream | None, store: RecordingStore, *, used_log: Path | None = None) -> None:
        self._inner = inner
        self.store = store
        self._used_log = used_log
        self._injected: FaultSpec | None = None
        self.replayed: Counter[str] = Counter()
        # each distinct request that missed -> its error (logged once; later misses at debug level)
        self._misses: dict[tuple[str, str | None], ReplayMissError] = {}
        if not store.indexed:  # several providers share one store: indexed (and said) once
            count = store.scan()
            log.info("replay: %d recordings indexed from %s", count, store.directory)

    # -- faults, for tests -------------------------------------------------------------

    def inject(self, spec: FaultSpec | str | None) -> None:
        """Apply a fault to every following request (until ``inject(None)``); a request's own
        ``X-Relaystack-Fault`` wins over it."""
        self._injected = FaultSpec.parse(spec) if isinstance(spec, str) else spec

    @contextlib.contextmanager
    def faults(self, spec: FaultSpec | str) -> Iterator[FaultSpec]:
        previous = self._injected
        self.inject(spec)
        try:
            assert self._injected is not None
            yield self._injected
        finally:
            self._injected = previous

    # -- the Upstream protocol -----------------------------------------------------------

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        fault = FaultSpec.parse(request.fault) if request.fault else self._injected
        if fault is not None and fault.status is not None:
            if fault.stall:
                await faults.stall(fault.stall)
            body = compact_json(fault_error_body(fault))
            return ReplayResponse(fault.status, fault.error_headers(), [body], stream=False)
        identity, _ = _identify(request)
        found = self.store.find(identity)
        if not found:
            raise self._miss(request, identity)
        used = found if found[0].is_model_list or found[0].identity.endpoint == "/api/tags" else found[:1]
        self._note_used(used)
        return _replay(used, fault)

    def _miss(self, request: UpstreamRequest, identity: Identity) -> ReplayMissError:
        """The error of a miss; logged (with the nearest recording's differences) once per
        distinct request, so a retrying client or suite does not flood the log."""
        key = (identity.match_key(), identity.test_id)
        known = self._misses.get(key)
        if known is not None:
            log.debug("replay miss again: %s", _describe(request, identity))
            return ReplayMissError(known.message)
        if len(self._misses) >= _MISSES_KEPT:
            self._misses.pop(next(iter(self._misses)))
        error = self._misses[key] = self._first_miss(request, identity)
        return error

    def _first_miss(self, request: UpstreamRequest, identity: Identity) -> ReplayMissError:
        what = _describe(request, identity)
        if identity.test_id:
            what += f" for test {identity.test_id}"
        near = nearest_recording(identity, self.store.candidates(identity))
        hint = ""
        would_be = _would_be(self.store, identity)
        # a listing that was not recorded is no failure: the provider serves the config's models
        level = logging.INFO if identity.is_model_list else logging.WARNING
        if near is None:
            log.log(
                level, "replay miss: %s (would be %s); %s holds no recording of %s at all",
                what, would_be, self.store.directory, urlsplit(request.url).path,
            )
            hint = " There is no recording of this endpoint at all."
        else:
            rec, diffs = near
            log.log(
                level, "replay miss: %s (would be %s); nearest recording %s (%s) differs in: %s",
                what, would_be, rec.id, rec.path, "; ".join(diffs) or "nothing visible",
            )
            fields = ", ".join(d.split(":", 1)[0] for d in diffs[:4])
            hint = f" The nearest recording is {rec.id} (differs in: {fields})."
        return ReplayMissError(
            f"No recording matches {what}; it would be {would_be}.{hint} "
            f"{RECORD_HINT} The log of 'relaystack.recording' shows the differing values."
        )

    def _note_used(self, found: list[Recording]) -> None:
        ids = [r.id for r in found]
        self.replayed.update(ids)
        if self._used_log is not None:
            try:
                with self._used_log.open("a", encoding="utf-8") as handle:
                    handle.write("".join(f"{i}\n" for i in ids))
            except OSError as exc:
                log.warning("replay: cannot append to the used-recordings log %s: %s", self._used_log, exc)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def _would_be(store: RecordingStore, identity: Identity) -> str:
    """Where a recording of this request would be written, relative to the recordings folder."""
    try:
        path = store.path_for(identity)
    except OSError:  # pragma: no cover - resolving the folder failed
        return f"responses/{identity.short_hash}.json"
    try:
        return str(path.relative_to(store.directory))
    except ValueError:
        return str(path)


def _replay(found: list[Recording], fault: FaultSpec | None) -> ReplayResponse:
    first = found[0]
    if first.is_exception:
        return _replay_failure(first)
    headers = {"x-relaystack-recording": first.id}
    if first.is_binary:
        content_type, data = first.binary()
        return ReplayResponse(200, {**headers, "content-type": content_type}, [data], stream=False, fault=fault)
    if first.replays_as_stream:
        headers["content-type"] = "text/event-stream"
        return ReplayResponse(200, headers, list(first.sse_events()), stream=True, fault=fault,
                              done_event=first.done_event)
    headers["content-type"] = "application/json"
    wire = first.wire_json()
    if len(found) > 1 and first.is_model_list:
        wire = _merged_models(found)
    elif len(found) > 1 and first.identity.endpoint == "/api/tags":
        wire = _merged_tags(found)
    return ReplayResponse(200, headers, [compact_json(wire)], stream=False, fault=fault)


def _replay_failure(rec: Recording) -> ReplayResponse:
    """A recorded error: the same status, body and headers; a transport failure: the same failure
    (after the chunks a broken stream delivered)."""
    headers = {"x-relaystack-recording": rec.id}
    status = rec.error_status
    if status is not None:
        body = rec.error_body()
        raw = body.encode() if isinstance(body, str) else compact_json(body)
        kind = "text/plain" if isinstance(body, str) else "application/json"
        return ReplayResponse(status, {**headers, **rec.error_headers(), "content-type": kind}, [raw], stream=False)
    message = f"{rec.error_message()} (replayed from recording {rec.id})"
    timeout = "timeout" in str((rec.exception or {}).get("type", "")).lower()
    error: RelaystackError = UpstreamTimeoutError(message) if timeout else UpstreamConnectionError(message)
    if rec.is_streaming and isinstance(rec.body, list) and rec.body:
        headers["content-type"] = "text/event-stream"
        return ReplayResponse(200, headers, list(rec.sse_events()), stream=True, end_error=error)
    raise error


def _merged_tags(found: list[Recording]) -> Any:
    """Ollama's ``/api/tags`` recorded several times: the union by model name, sorted."""
    by_name: dict[str, Any] = {}
    for rec in found:
        page = rec.wire_json()
        for model in page.get("models", []) if isinstance(page, dict) else []:
            if isinstance(model, dict):
                by_name.setdefault(str(model.get("model") or model.get("name")), model)
    return {"models": [by_name[k] for k in sorted(by_name)]}


def _merged_models(found: list[Recording]) -> Any:
    """Several model-list recordings of one request: the union by id, sorted (llama-stack's rule)."""
    by_id: dict[str, Any] = {}
    for rec in found:
        for model in rec.items():
            key = str(model.get("id")) if isinstance(model, dict) else repr(model)
            by_id.setdefault(key, model)
    items = [by_id[k] for k in sorted(by_id)]
    shape = found[0].wire_json()
    return {**shape, list_key(shape) or "data": items} if isinstance(shape, dict) else items
