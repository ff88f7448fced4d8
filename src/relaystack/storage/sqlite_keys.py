"""The ``KeyStore`` part of ``SqliteStore`` (mixed in): tables ``api_keys`` and ``usage_daily``.

Writes go through the store's one writer thread (group commit, acknowledged once committed),
reads through its read pool, like chat completions; the SQL stays here.

``keys_version()`` runs on every authenticated request, so it must cost next to nothing yet see
another process's change at once. It reads an 8-byte stamp from a file beside the database
(``<db>-keys``) that every process maps into memory: a read is a memory access (~0.3 µs; the
store's own ``PRAGMA data_version`` check measured ~20 µs under load, because every stored
completion changes it). A key write puts a fresh random stamp there inside its transaction and
again once it committed, so a process that reloads a key between the two sees the second.

``add_usage`` runs for an answered request the gateway accounts whose completion is not stored
(a stored one's usage row rides in the completion's own writer op: ``_writer.PUT_COMPLETION_USAGE``).
Rows are not written one upsert each: they join the one usage write waiting for the writer
thread, merged per (day, key, model, provider), until the writer runs it inside its next
transaction; each caller gets a future of its own, resolved once that transaction committed.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from relaystack.storage._writer import ADD_USAGE, RUN, merge_usage_row
from relaystack.storage.base import UsageRow

__all__ = ["SqliteKeys"]

_T = TypeVar("_T")

_UPSERT_KEY = """
INSERT INTO api_keys (id, record) VALUES (?, ?)
ON CONFLICT (id) DO UPDATE SET record = excluded.record
"""
_SELECT_KEY = "SELECT record FROM api_keys WHERE id = ?"
_SELECT_KEYS = "SELECT record FROM api_keys ORDER BY seq"
_SELECT_USAGE = """
SELECT day, key_id, model, provider, requests, prompt_tokens, completion_tokens, cached_tokens, cost
FROM usage_daily WHERE day >= ? AND day <= ?{key_filter}
ORDER BY day, key_id, model, provider
"""


def _put_key(key_id: str, blob: bytes, stamp: SharedStamp, conn: sqlite3.Connection) -> None:
    conn.execute(_UPSERT_KEY, (key_id, blob))
    stamp.bump()


def _add_usage(rows: Sequence[Sequence[Any]], conn: sqlite3.Connection) -> None:
    if len(rows) == 1:
        conn.execute(ADD_USAGE, rows[0])  # the common case; executemany costs more for one row
    else:
        conn.executemany(ADD_USAGE, rows)


class _UsageWrite:
    """The usage rows waiting for the writer thread, merged per (day, key, model, provider), and
    a future per caller (a cancelled request cancels only its own)."""

    __slots__ = ("loop", "rows", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop  # the callers' (a caller on another loop starts a write of its own)
        self.rows: dict[tuple[Any, ...], list[Any]] = {}
        self.waiters: list[asyncio.Future[None]] = []

    def add(self, rows: Sequence[UsageRow]) -> None:
        for row in rows:
            merge_usage_row(self.rows, row)


def _write_usage(owner: SqliteKeys, write: _UsageWrite, conn: sqlite3.Connection) -> None:
    """In the writer thread, inside its transaction: from here on, new rows go to a new write.
    (Run again with the same rows when the writer retries a transaction another write failed.)"""
    assert owner._usage_lock is not None
    with owner._usage_lock:
        if owner._usage_write is write:
            owner._usage_write = None
        rows = [tuple(total) for total in write.rows.values()]
    _add_usage(rows, conn)


def _resolve(waiters: list[asyncio.Future[None]], written: asyncio.Future[None]) -> None:
    error = RuntimeError("the usage write was cancelled") if written.cancelled() else written.exception()
    for waiter in waiters:
        if waiter.done():  # its request was cancelled; the write happened anyway
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


def encode_key(record: dict[str, Any]) -> tuple[str, bytes]:
    key_id = record.get("id")
    if not isinstance(key_id, str) or not key_id:
        raise ValueError(f"cannot store a key without a string 'id' (got {key_id!r})")
    return key_id, orjson.dumps(record)


class SharedStamp:
    """8 bytes in a file every process maps: ``bump()`` writes a fresh random value, ``read()`` reads it.

    Random rather than counted, so two processes bumping at once still leave a new value.
    """

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self.map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def read(self) -> int:
        return int.from_bytes(self.map[:8], "little")

    def bump(self) -> None:
        self.map[:8] = secrets.token_bytes(8)


class SqliteKeys:
    path: Path
    _keys_stamp: SharedStamp | None = None
    _usage_write: _UsageWrite | None = None  # shared with the writer thread, under _usage_lock
    _usage_lock: threading.Lock | None = None

    if TYPE_CHECKING:  # provided by SqliteStore

        def _submit(self, kind: int, params: tuple[Any, ...]) -> asyncio.Future[Any]: ...

        async def _read(self, fn: Callable[..., _T], *args: Any) -> _T: ...

        def _read_conn(self) -> sqlite3.Connection: ...

    def _stamp(self) -> SharedStamp:
        if self._keys_stamp is None:
            self._keys_stamp = SharedStamp(self.path.with_name(self.path.name + "-keys"))
        return self._keys_stamp

    async def put_key(self, record: dict[str, Any]) -> None:
        key_id, blob = encode_key(record)
        stamp = self._stamp()
        await self._submit(RUN, (partial(_put_key, key_id, blob, stamp),))
        stamp.bump()

    async def get_key(self, key_id: str) -> dict[str, Any] | None:
        return await self._read(self._get_key_sync, key_id)

    async def list_keys(self) -> list[dict[str, Any]]:
        return await self._read(self._list_keys_sync)

    def keys_version(self) -> int:
        stamp = self._keys_stamp or self._stamp()  # called on every authenticated request
        return int.from_bytes(stamp.map[:8], "little")

    def add_usage(self, rows: Sequence[UsageRow]) -> asyncio.Future[None]:
        """Joins the usage write waiting for the writer (or queues a new one); the future is
        this caller's own, resolved once the rows committed."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        lock = self._usage_lock
        if lock is None:  # made on first use, by the event loop's thread
            lock = self._usage_lock = threading.Lock()
        with lock:
            write = self._usage_write
            if write is None or write.loop is not loop:
                write = _UsageWrite(loop)
                queued = self._submit(RUN, (partial(_write_usage, self, write),))  # raises when stopped
                queued.add_done_callback(partial(_resolve, write.waiters))
                self._usage_write = write
            write.add(rows)
            write.waiters.append(waiter)
        return waiter

    async def usage_totals(self, *, since: str, until: str, key_id: str | None = None) -> list[UsageRow]:
        return await self._read(self._usage_sync, since, until, key_id)

    # -- the read pool's side -----------------------------------------------------------------
    def _get_key_sync(self, key_id: str) -> dict[str, Any] | None:
        row = self._read_conn().execute(_SELECT_KEY, (key_id,)).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def _list_keys_sync(self) -> list[dict[str, Any]]:
        return [orjson.loads(blob) for (blob,) in self._read_conn().execute(_SELECT_KEYS)]

    def _usage_sync(self, since: str, until: str, key_id: str | None) -> list[UsageRow]:
        sql = _SELECT_USAGE.format(key_filter=" AND key_id = ?" if key_id is not None else "")
        args: tuple[Any, ...] = (since, until) if key_id is None else (since, until, key_id)
        return [UsageRow(*row) for row in self._read_conn().execute(sql, args)]
