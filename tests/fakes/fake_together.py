"""A fake api.together.xyz on 127.0.0.1: the real API's shapes and quirks, plus knobs for failure tests.

``FakeTogether`` runs an aiohttp app on its own event loop in a daemon thread, so sync tests, async
tests and a ``relaystack run`` subprocess can all talk to it. It records every request it receives
(``.requests``) and exposes one-shot fault controls (``fail_next``, ``stall_next``,
``cut_stream_after``, ``stream_raw_next``) and a persistent one (``slow_stream``), plus stream counters and a
``client_disconnected`` event that tells whether relaystack hung up mid-stream.

Endpoints (under ``/v1``): ``GET /models`` (a bare JSON array, quirk Q1), ``POST /chat/completions``,
``POST /completions``, ``POST /embeddings``. Response bodies live in ``together_bodies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .together_bodies import (
    TogetherError,
    chat_events,
    chat_response,
    completion_events,
    completion_response,
    embeddings_response,
)
from .together_data import MODELS

__all__ = ["DEFAULT_API_KEY", "FakeTogether", "ReceivedRequest"]

DEFAULT_API_KEY = "fake-together-key"
INVALID_KEY_BODY = {
    "error": {
        "message": "Invalid API key provided",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
_ERROR_TYPES = {429: "rate_limit_exceeded", 503: "service_unavailable", 504: "timeout"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_JSON_BODY = web.RequestKey("json_body", object)


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    json: Any  # the parsed body, or None (GET, or not JSON)
    body: bytes

    @property
    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None


@dataclass(slots=True)
class _Failure:
    status: int
    retry_after: float | None
    path: str | None
    message: str | None
    body: Any


@dataclass(slots=True)
class _Stall:
    seconds: float
    path: str | None


@dataclass(slots=True)
class _StreamStats:
    started: int = 0
    open: int = 0
    completed: int = 0
    cut: int = 0
    disconnected: int = 0
    chunks_sent: list[int] = field(default_factory=list)


class FakeTogether:
    """See the module docstring. ``base_url`` is ``http://127.0.0.1:<port>/v1`` once started."""

    def __init__(self, api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)) -> None:
        self.api_keys: set[str] = set(api_keys)
        self.models: list[dict[str, Any]] = [dict(m) for m in MODELS]
        self.requests: list[ReceivedRequest] = []
        self.client_disconnected = threading.Event()
        self._lock = threading.Lock()
        self._failures: deque[_Failure] = deque()
        self._stalls: deque[_Stall] = deque()
        self._cut: tuple[int, bool] | None = None
        self._raw_streams: deque[list[bytes]] = deque()
        self._chunk_delay = 0.0
        self._stats = _StreamStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("FakeTogether is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeTogether:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-together", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._astart(), self._loop).result(timeout=10)
        return self

    async def _astart(self) -> None:
        # handler_cancellation: a client hanging up cancels the handler, which is how we see it
        self._runner = web.AppRunner(self.app(), handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> FakeTogether:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- controls --------------------------------------------------------------------------

    def accept_keys(self, *keys: str) -> None:
        """Replace the set of API keys answered with 200 (every other key gets Together's 401)."""
        self.api_keys = set(keys)

    def fail_next(
        self,
        status: int = 500,
        *,
        retry_after: float | None = None,
        times: int = 1,
        path: str | None = None,
        message: str | None = None,
        body: Any = None,
    ) -> None:
        """The next ``times`` requests (to ``path``, e.g. ``"/v1/chat/completions"``, if given) answer
        ``status`` with Together's error envelope (or ``body``) and a ``Retry-After`` header if given."""
        with self._lock:
            for _ in range(times):
                self._failures.append(_Failure(status, retry_after, path, message, body))

    def stall_next(self, seconds: float, *, path: str | None = None) -> None:
        """The next request (to ``path``) waits ``seconds`` before any byte of the response is sent."""
        with self._lock:
            self._stalls.append(_Stall(seconds, path))

    def cut_stream_after(self, chunks: int, *, hang: bool = False) -> None:
        """The next stream stops after ``chunks`` events, without ``[DONE]``: the connection is
        aborted, or with ``hang=True`` kept open and silent until the client gives up."""
        with self._lock:
            self._cut = (chunks, hang)

    def stream_raw_next(self, *pieces: bytes) -> None:
        """The next streamed answer is exactly these bytes (each piece one write), whatever
        they hold: malformed events, error events, no ``[DONE]``..."""
        with self._lock:
            self._raw_streams.append(list(pieces))

    def slow_stream(self, delay: float) -> None:
        """Wait ``delay`` seconds before each stream event, until ``slow_stream(0)`` or ``reset()``."""
        self._chunk_delay = delay

    def reset(self) -> None:
        """Forget recorded requests, pending faults and stream counters."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self._stalls.clear()
            self._cut = None
            self._raw_streams.clear()
            self._chunk_delay = 0.0
            self._stats = _StreamStats()
            self.client_disconnected.clear()

    # ---- observations ----------------------------------------------------------------------

    @property
    def streams_started(self) -> int:
        return self._stats.started

    @property
    def open_streams(self) -> int:
        return self._stats.open

    @property
    def streams_completed(self) -> int:
        return self._stats.completed

    @property
    def streams_cut(self) -> int:
        return self._stats.cut

    @property
    def streams_disconnected(self) -> int:
        return self._stats.disconnected

    @property
    def chunks_sent(self) -> list[int]:
        """Events written per stream, in the order the streams ended."""
        return list(self._stats.chunks_sent)

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        return [r for r in list(self.requests) if r.path == path]

    @property
    def last_request(self) -> ReceivedRequest:
        if not self.requests:
            raise AssertionError("the fake Together received no request")
        return self.requests[-1]

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        """True once a client hung up on an unfinished stream (or a stalled request)."""
        return self.client_disconnected.wait(timeout)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    # ---- the app ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._faults, self._auth])
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._json_or_stream(chat_response, chat_events))
        app.router.add_post("/v1/completions", self._json_or_stream(completion_response, completion_events))
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        received = ReceivedRequest(
            request.method,
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            parsed,
            raw,
        )
        with self._lock:
            self.requests.append(received)
        request[_JSON_BODY] = parsed
        return await handler(request)

    def _take(self, queue: deque[Any], path: str) -> Any:
        with self._lock:
            for item in list(queue):
                if item.path is None or item.path == path:
                    queue.remove(item)
                    return item
        return None

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        stall: _Stall | None = self._take(self._stalls, request.path)
        if stall is not None:
            try:
                await asyncio.sleep(stall.seconds)
            except asyncio.CancelledError:
                self.client_disconnected.set()
                raise
        failure: _Failure | None = self._take(self._failures, request.path)
        if failure is None:
            return await handler(request)
        body = (
            failure.body
            if failure.body is not None
            else {
                "error": {
                    "message": failure.message or f"Injected failure {failure.status}",
                    "type": _ERROR_TYPES.get(
                        failure.status, "server_error" if failure.status >= 500 else "invalid_request_error"
                    ),
                    "param": None,
                    "code": None,
                }
            }
        )
        headers = {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
        return web.json_response(body, status=failure.status, headers=headers)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if key not in self.api_keys:
            return web.json_response(INVALID_KEY_BODY, status=401)
        return await handler(request)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.models)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request)
        if isinstance(body, web.Response):
            return body
        try:
            return web.json_response(embeddings_response(body))
        except TogetherError as exc:
            return web.json_response(exc.body(), status=exc.status)

    @staticmethod
    def _body(request: web.Request) -> dict[str, Any] | web.Response:
        body = request[_JSON_BODY]
        if not isinstance(body, dict):
            error = TogetherError(400, "Request body must be a JSON object")
            return web.json_response(error.body(), status=400)
        return body

    def _json_or_stream(
        self,
        respond: Callable[[dict[str, Any]], dict[str, Any]],
        events: Callable[[dict[str, Any]], list[dict[str, Any]]],
    ) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = self._body(request)
            if isinstance(body, web.Response):
                return body
            try:
                if body.get("stream"):
                    return await self._stream(request, events(body))
                return web.json_response(respond(body))
            except TogetherError as exc:
                return web.json_response(exc.body(), status=exc.status)

        return handle

    async def _stream(self, request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
        with self._lock:
            cut, self._cut = self._cut, None
            raw = self._raw_streams.popleft() if self._raw_streams else None
            self._stats.started += 1
            self._stats.open += 1
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream;charset=utf-8", "Cache-Control": "no-cache"}
        )
        sent, outcome = 0, "disconnected"
        try:
            await response.prepare(request)
            if raw is not None:
                for piece in raw:
                    await response.write(piece)
                await response.write_eof()
                outcome = "completed"
                return response
            for event in events:
                if cut is not None and sent >= cut[0]:
                    if cut[1]:
                        await self._hang_until_client_leaves(request)
                    elif request.transport is not None:
                        outcome = "cut"
                        request.transport.abort()
                    return response
                if self._chunk_delay:
                    await asyncio.sleep(self._chunk_delay)
                await response.write(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
                sent += 1
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            outcome = "completed"
            return response
        except (ConnectionError, asyncio.CancelledError):
            outcome = "disconnected"
            raise
        finally:
            self._stream_ended(outcome, sent)

    @staticmethod
    async def _hang_until_client_leaves(request: web.Request) -> None:
        # handler_cancellation=True: the client hanging up cancels this wait
        await asyncio.Event().wait()

    def _stream_ended(self, outcome: str, sent: int) -> None:
        with self._lock:
            self._stats.open -= 1
            self._stats.chunks_sent.append(sent)
            if outcome == "completed":
                self._stats.completed += 1
            elif outcome == "cut":
                self._stats.cut += 1
            else:
                self._stats.disconnected += 1
        if outcome == "disconnected":
            self.client_disconnected.set()


@contextlib.contextmanager
def running_fake_together(api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)) -> Iterator[FakeTogether]:
    fake = FakeTogether(api_keys)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
