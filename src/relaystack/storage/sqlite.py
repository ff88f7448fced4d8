"""The default ``Store``: one SQLite file shared by every worker process, never waiting on the loop.

Writes, per process: one transaction per event-loop turn, committed on the loop itself
(``_loop_writer.LoopWriter``: no GIL hand-off per SQLite step, no thread wake-up); a put returns
once its batch is committed. The loop's connection never waits for a lock nor checkpoints.
Threads, per process:
- the writer thread (``_writer.Writer``): the batches the loop must not wait for (another process
  holds the write lock; ``synchronous=FULL``);
- the checkpointer (``_loop_writer.Checkpointer``): PASSIVE checkpoints while commits happen, at the
  lowest CPU priority (nice 19);
- a small read pool, one connection per thread (``list``/``get``/``load_models``);
- ``models_version()`` runs on the event loop on its own read-only connection: ``PRAGMA
  data_version`` (no I/O; changes when any other connection, in any process, committed) gates a
  one-row read of the ``meta`` counter that every model write bumps.

Ordering and cursors: rows are ordered by ``(created, seq)``, ``seq`` being the insertion
sequence (the rowid), and ``after=<id>`` continues strictly after that row's ``(created, seq)``,
so rows sharing a second are never skipped nor repeated (llama-stack compares ``created`` only).

Replacing an id (recordings replay the same ids) updates the row in place: content, ``created``
and ``model`` come from the new completion, ``seq`` stays. A replay with the same ``created``
therefore keeps its position, and a client paging while a row is replaced sees it once.

``start()`` must run in the process that uses the store (each uvicorn worker, in its lifespan):
SQLite connections and threads do not survive ``fork``; a store used across a fork refuses writes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from relaystack.errors import ConfigError
from relaystack.storage._common import (
    StoreClosedError,
    completion_not_found,
    encode_completion,
    encode_model,
    encode_stream,
    make_item,
    make_page,
    unknown_after,
    validate_list_args,
)
from relaystack.storage._loop_writer import Checkpointer, LoopWriter
from relaystack.storage._schema import connect, migrate
from relaystack.storage._writer import (
    DELETE_MODEL,
    PUT_COMPLETION,
    PUT_COMPLETION_USAGE,
    PUT_MODEL,
    Writer,
    storage_error,
)
from relaystack.storage.base import CompletionPage, StoreHealth, UsageRow
from relaystack.storage.sqlite_keys import SqliteKeys
from relaystack.storage.sqlite_responses import SqliteResponses

__all__ = ["SqliteStore", "StoreClosedError"]

log = logging.getLogger("relaystack.storage")

_T = TypeVar("_T")

_SELECT_CURSOR = "SELECT created, seq FROM chat_completions WHERE id = ?"
_SELECT_ONE = "SELECT id, created, completion, input_messages, model FROM chat_completions WHERE id = ?"
_SELECT_MODELS = "SELECT model FROM models ORDER BY rowid"
_SELECT_MODELS_VERSION = "SELECT value FROM meta WHERE key = 'models_version'"
_HEALTHY = StoreHealth("sqlite")

# How many forks this process has come through: a store started before a fork refuses writes in
# the child. Counted at fork time, not asked of the kernel on every write (getpid is a system
# call since glibc 2.25, and every stored request made one).
_forks_seen = 0


def _count_fork() -> None:
    global _forks_seen
    _forks_seen += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_count_fork)


class SqliteStore(SqliteResponses, SqliteKeys):  # stored responses: sqlite_responses.py; keys and usage: sqlite_keys.py
    commits_usage_with_completions = True

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 5.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        read_threads: int = 2,
    ) -> None:
        self.path = Path(path).expanduser()
        self._busy_timeout_s = busy_timeout_s
        self._synchronous = synchronous
        self._read_threads = read_threads
        self._writer: LoopWriter | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._read_local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._version_conn: sqlite3.Connection | None = None
        self._version_lock = threading.Lock()
        self._data_version: int | None = None
        self._models_version = 0
        self._accepting = False  # True between start() and stop(), in the starting process only
        self._stopped = False
        self._forks = _forks_seen  # the process generation it was started in (see _count_fork)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._writer is not None or self._stopped:
            raise RuntimeError("SqliteStore.start() called twice; create a new store instead")
        await asyncio.to_thread(self._open)
        self._forks = _forks_seen
        self._accepting = True

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the storage directory {self.path.parent} ({exc.strerror}). "
                "Set storage.dir or storage.db_path to a writable place."
            ) from exc
        conn = self._connect()
        opened = [conn]
        try:
            migrate(conn, self.path)
            self._version_conn = self._connect(query_only=True)
            opened.append(self._version_conn)
            # the loop's connection never waits for a lock (the thread's does), and neither
            # checkpoints: the checkpointer's own connection does (storage/_loop_writer.py)
            loop_conn = self._connect()
            opened.append(loop_conn)
            loop_conn.execute("PRAGMA busy_timeout = 0")
            checkpoint_conn = self._connect()
            opened.append(checkpoint_conn)
            for writing in (conn, loop_conn):
                writing.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            for each in opened:
                each.close()
            raise
        self._readers = ThreadPoolExecutor(self._read_threads, thread_name_prefix="relaystack-store-read")
        checkpointer = Checkpointer(checkpoint_conn, self.path)
        self._writer = LoopWriter(
            loop_conn, self.path, Writer(conn, self.path), checkpointer, on_loop=self._synchronous != "FULL")
        self._writer.start()

    def _connect(self, *, query_only: bool = False) -> sqlite3.Connection:
        return connect(
            self.path,
            busy_timeout_s=self._busy_timeout_s,
            synchronous=self._synchronous,
            query_only=query_only,
        )

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._accepting = False
        if self._writer is not None:
            await asyncio.to_thread(self._close)

    def _close(self) -> None:
        assert self._writer is not None and self._readers is not None
        self._writer.stop()  # commits everything queued before stop(), fails anything after
        self._readers.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        with self._version_lock:
            if self._version_conn is not None:
                self._version_conn.close()
                self._version_conn = None

    def health(self) -> StoreHealth:
        return _HEALTHY  # asked before every stored request: one constant, no allocation

    # -- writes (hot path) --------------------------------------------------------------------
    async def put_completion(
        self, completion: dict[str, Any], input_messages: list[Any], raw: bytes | None = None,
        usage: UsageRow | None = None,
    ) -> None:
        params = encode_completion(completion, input_messages, raw)
        if usage is None:
            await self._submit(PUT_COMPLETION, params)
        else:  # one write, one transaction: the completion and its request's usage, or neither
            await self._submit(PUT_COMPLETION_USAGE, (params, usage))

    async def put_stream(
        self, completion_id: str, created: int, model: str, events: bytes, input_messages: list[Any],
        usage: UsageRow | None = None,
    ) -> None:
        params = encode_stream(completion_id, created, model, events, input_messages)
        if usage is None:
            await self._submit(PUT_COMPLETION, params)
        else:
            await self._submit(PUT_COMPLETION_USAGE, (params, usage))

    async def put_model(self, model: dict[str, Any]) -> None:
        await self._submit(PUT_MODEL, encode_model(model))

    async def delete_model(self, identifier: str) -> bool:
        return bool(await self._submit(DELETE_MODEL, (identifier,)))

    def _submit(self, kind: int, params: tuple[Any, ...]) -> asyncio.Future[Any]:
        if not self._accepting or self._forks != _forks_seen:
            raise self._unusable()
        assert self._writer is not None
        future = asyncio.get_running_loop().create_future()
        self._writer.submit((kind, params, future))
        return future

    def _unusable(self) -> StoreClosedError:
        if self._stopped:
            return StoreClosedError(
                "The store is stopped (the server is shutting down); nothing was written or read."
            )
        if self._writer is None:
            return StoreClosedError("The store is not started; call start() first.")
        return StoreClosedError("This store was started in another process (forked?); start one per process.")

    # -- reads (read pool) -------------------------------------------------------------------
    async def list_completions(
        self,
        *,
        after: str | None = None,
        limit: int = 20,
        model: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> CompletionPage:
        validate_list_args(limit, order)
        return await self._read(self._list_sync, after, limit, model, order == "desc")

    async def get_completion(self, completion_id: str) -> dict[str, Any]:
        return await self._read(self._get_sync, completion_id)

    async def load_models(self) -> list[dict[str, Any]]:
        return await self._read(self._load_models_sync)

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        if not self._accepting or self._readers is None:
            raise self._unusable()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)
        except sqlite3.Error as exc:
            log.error("storage read: %s: %s", self.path, exc)
            raise storage_error(exc) from None

    def _read_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._read_local, "conn", None)
        if conn is None:
            conn = self._connect(query_only=True)
            self._read_local.conn = conn
            with self._conns_lock:
                self._read_conns.append(conn)
        return conn

    def _list_sync(self, after: str | None, limit: int, model: str | None, desc: bool) -> CompletionPage:
        conn = self._read_conn()
        where: list[str] = []
        args: list[Any] = []
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if after is not None:
            position = conn.execute(_SELECT_CURSOR, (after,)).fetchone()
            if position is None:
                raise unknown_after(after)
            where.append(f"(created, seq) {'<' if desc else '>'} (?, ?)")
            args.extend(position)
        direction = "DESC" if desc else "ASC"
        sql = (
            "SELECT id, created, completion, input_messages, model FROM chat_completions"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY created {direction}, seq {direction} LIMIT ?"
        )
        rows = conn.execute(sql, (*args, limit + 1)).fetchall()
        items = [make_item(*row) for row in rows[:limit]]
        return make_page(items, has_more=len(rows) > limit)

    def _get_sync(self, completion_id: str) -> dict[str, Any]:
        row = self._read_conn().execute(_SELECT_ONE, (completion_id,)).fetchone()
        if row is None:
            raise completion_not_found(completion_id)
        return make_item(*row)

    def _load_models_sync(self) -> list[dict[str, Any]]:
        return [orjson.loads(blob) for (blob,) in self._read_conn().execute(_SELECT_MODELS)]

    # -- models version (event loop, cheap) -------------------------------------------------
    def models_version(self) -> int:
        """Changes whenever any process changed the registered models.

        Costs one ``PRAGMA data_version`` (a shared-memory read) and, only when some connection
        committed anything since the last call, one indexed one-row read. After ``stop()`` the
        last known value is returned, so a poller racing shutdown does not crash.
        """
        if self._writer is None:
            raise self._unusable()
        with self._version_lock:
            conn = self._version_conn
            if conn is None:
                return self._models_version
            try:
                data_version = conn.execute("PRAGMA data_version").fetchone()[0]
                if data_version != self._data_version:
                    self._models_version = conn.execute(_SELECT_MODELS_VERSION).fetchone()[0]
                    self._data_version = data_version
            except sqlite3.Error as exc:
                log.warning("storage: cannot read the models version of %s: %s", self.path, exc)
            return self._models_version
