"""One thread per loaded model: loads it, then runs requests one at a time, in order.

Why a dedicated thread and not ``asyncio.to_thread``: a ``Llama`` (and our numpy model's
scratch buffers) must never be used by two threads at once, and a request queue makes
concurrent requests wait their turn instead of interleaving. The event loop only ever
awaits an ``asyncio.Queue`` fed with ``call_soon_threadsafe``, so it never blocks on
inference. Each job gets a ``cancelled()`` callable; closing the async iterator (a client
disconnect) sets it, and the engines check it between tokens / batches.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, Generic, TypeVar

from relaystack.errors import RelaystackError, ServiceUnavailableError
from relaystack.local.assets import AssetError

__all__ = ["ModelWorker"]

log = logging.getLogger("relaystack.local")

E = TypeVar("E")
T = TypeVar("T")

_ITEM, _ERROR, _END = 0, 1, 2


class _Job:
    __slots__ = ("cancel", "fn", "push")

    def __init__(
        self,
        fn: Callable[[Any, Callable[[], bool]], Iterator[Any]],
        push: Callable[[int, Any], None],
        cancel: threading.Event,
    ) -> None:
        self.fn = fn
        self.push = push
        self.cancel = cancel


class ModelWorker(Generic[E]):
    """Owns one engine ``E``; ``state`` is what GET /v1/health reports for it."""

    def __init__(
        self,
        name: str,
        load: Callable[[], E],
        *,
        describe: Callable[[], str] = lambda: "",
        close: Callable[[E], None] | None = None,
    ) -> None:
        self.name = name
        self._load = load
        self._describe = describe
        self._close_engine = close
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state = "not_loaded"
        self._current: _Job | None = None
        self._closed = False
        self.load_seconds: float | None = None

    @property
    def state(self) -> str:
        """One of not_loaded, loading, ready or "failed: <reason>"."""
        return self._state

    @property
    def queue_depth(self) -> int:
        """Requests waiting for the engine, plus the one it runs (for the metrics)."""
        return self._jobs.qsize() + (self._current is not None)

    def start(self) -> None:
        """Begin loading in the background (idempotent, never raises)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._state = "loading"
            self._thread = threading.Thread(target=self._run, name=f"relaystack-local:{self.name}", daemon=True)
            self._thread.start()

    def _raise_if_unusable(self) -> None:
        if self._closed:
            raise ServiceUnavailableError(f"The local model {self.name} is shutting down.")
        if self._state.startswith("failed"):
            raise self._failure_error()

    def _failure_error(self) -> ServiceUnavailableError:
        reason = self._state.removeprefix("failed: ")
        return ServiceUnavailableError(f"The local model {self.name} could not be loaded: {reason}")

    async def call(self, fn: Callable[[E, Callable[[], bool]], T]) -> T:
        """Run ``fn(engine, cancelled)`` on the worker thread after every earlier job."""
        results = self.stream(lambda engine, cancelled: iter((fn(engine, cancelled),)))
        try:
            return await anext(results)
        except StopAsyncIteration:
            raise ServiceUnavailableError(f"The local model {self.name} stopped before answering.") from None
        finally:
            await results.aclose()

    async def stream(self, fn: Callable[[E, Callable[[], bool]], Iterator[T]]) -> AsyncGenerator[T, None]:
        """Items of ``fn(engine, cancelled)`` as they are produced; closing this iterator cancels the job."""
        self.start()
        self._raise_if_unusable()
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        cancel = threading.Event()

        def push(kind: int, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(inbox.put_nowait, (kind, value))
            except RuntimeError:  # the loop is gone: nobody is listening any more
                cancel.set()

        self._jobs.put(_Job(fn, push, cancel))
        try:
            while True:
                kind, value = await inbox.get()
                if kind == _ITEM:
                    yield value
                elif kind == _ERROR:
                    raise value
                else:
                    return
        finally:
            cancel.set()

    async def close(self, timeout: float = 10.0) -> None:
        """Cancel the running job, fail queued ones, stop the thread, free the model."""
        with self._lock:
            self._closed = True
            thread = self._thread
            current = self._current
        if current is not None:
            current.cancel.set()
        self._jobs.put(None)
        if thread is not None:
            await asyncio.to_thread(thread.join, timeout)

    # --- worker thread -------------------------------------------------------------------------

    def _run(self) -> None:
        engine = self._load_engine()
        while True:
            job = self._jobs.get()
            if job is None:
                break
            if self._closed:
                job.push(_ERROR, ServiceUnavailableError(f"The local model {self.name} is shutting down."))
                continue
            self._current = job
            try:
                self._run_job(engine, job)
            finally:
                self._current = None
        self._drain()
        if engine is not None and self._close_engine is not None:
            try:
                self._close_engine(engine)
            except Exception:  # freeing memory at shutdown must not raise
                log.exception("closing %s failed", self.name)

    def _load_engine(self) -> E | None:
        try:
            detail = self._describe()
        except Exception:
            detail = ""
        log.info("loading %s%s...", self.name, f" ({detail})" if detail else "")
        started = time.perf_counter()
        try:
            engine = self._load()
        except Exception as exc:
            reason = str(exc) if isinstance(exc, AssetError | RelaystackError) else f"{type(exc).__name__}: {exc}"
            self._state = f"failed: {reason}"
            log.error("loading %s failed: %s", self.name, reason)
            return None
        self.load_seconds = time.perf_counter() - started
        self._state = "ready"
        log.info("%s ready in %.1f s", self.name, self.load_seconds)
        return engine

    def _run_job(self, engine: E | None, job: _Job) -> None:
        if job.cancel.is_set():
            job.push(_END, None)
            return
        if engine is None:
            job.push(_ERROR, self._failure_error())
            return
        items: Iterator[Any] | None = None
        try:
            items = job.fn(engine, job.cancel.is_set)
            for item in items:
                if job.cancel.is_set():
                    break
                job.push(_ITEM, item)
        except RelaystackError as exc:
            job.push(_ERROR, exc)
            return
        except Exception as exc:
            if not job.cancel.is_set():
                log.exception("local model %s failed", self.name)
            job.push(_ERROR, RelaystackError(f"The local model {self.name} failed: {type(exc).__name__}."))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        job.push(_END, None)

    def _drain(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.push(_ERROR, ServiceUnavailableError(f"The local model {self.name} is shutting down."))
