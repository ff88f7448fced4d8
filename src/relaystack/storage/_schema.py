"""Opening the SQLite file and bringing its schema up to date.

The schema version lives in ``PRAGMA user_version``; ``MIGRATIONS[i]`` moves a file from
version ``i`` to ``i + 1``. Several worker processes may start at the same moment, so the
check-and-migrate runs inside ``BEGIN IMMEDIATE``: one process migrates, the others wait on
the busy timeout and then find the work done.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from relaystack.errors import ConfigError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "connect", "migrate"]

MIGRATIONS: tuple[str, ...] = (
    # v1. seq is the rowid (AUTOINCREMENT: never reused), so the order (created, seq) is the
    # insertion order within one second, and an upsert on `id` keeps a row's seq.
    """
    CREATE TABLE chat_completions (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        id             TEXT    NOT NULL UNIQUE,
        created        INTEGER NOT NULL,
        model          TEXT    NOT NULL,
        completion     BLOB    NOT NULL,  -- the chat.completion, UTF-8 JSON
        input_messages BLOB    NOT NULL   -- the request's messages, UTF-8 JSON
    );
    CREATE INDEX chat_completions_order ON chat_completions (created, seq);
    CREATE INDEX chat_completions_model_order ON chat_completions (model, created, seq);
    CREATE TABLE models (
        identifier TEXT PRIMARY KEY,
        model      BLOB NOT NULL          -- as given to put_model, UTF-8 JSON
    );
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('models_version', 0);
    """,
    # v2. stored Responses API answers (storage/sqlite_responses.py); ordered like chat_completions
    """
    CREATE TABLE responses (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        id          TEXT    NOT NULL UNIQUE,
        created     INTEGER NOT NULL,  -- the response's created_at
        model       TEXT    NOT NULL,
        response    BLOB    NOT NULL,  -- the response object, UTF-8 JSON
        input_items BLOB    NOT NULL,  -- the conversation's input items, UTF-8 JSON
        messages    BLOB    NOT NULL   -- the conversation as chat messages, UTF-8 JSON
    );
    CREATE INDEX responses_order ON responses (created, seq);
    CREATE INDEX responses_model_order ON responses (model, created, seq);
    """,
    # v3. virtual keys and usage totals (storage/sqlite_keys.py). A key row never holds the
    # secret, only its HMAC; usage is one row per (day, key, model, provider), added to in place.
    """
    CREATE TABLE api_keys (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        id     TEXT NOT NULL UNIQUE,
        record BLOB NOT NULL              -- the key record, UTF-8 JSON
    );
    CREATE TABLE usage_daily (
        day               TEXT    NOT NULL,  -- YYYY-MM-DD, UTC
        key_id            TEXT    NOT NULL,
        model             TEXT    NOT NULL,
        provider          TEXT    NOT NULL,
        requests          INTEGER NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens     INTEGER NOT NULL,
        cost              REAL    NOT NULL,  -- US dollars
        PRIMARY KEY (day, key_id, model, provider)
    ) WITHOUT ROWID;
    CREATE INDEX usage_daily_by_key ON usage_daily (key_id, day);
    """,
    # v4. the key that created a stored response (server.auth on; NULL otherwise): another
    # key's responses are not found (storage/sqlite_responses.py)
    """
    ALTER TABLE responses ADD COLUMN owner TEXT;
    """,
    # v5. responses without AUTOINCREMENT: a new row no longer writes sqlite_sequence (a page per
    # commit; ~3 of ~36 µs of SQLite work per stored response, bench/README.md "The Responses
    # stream's CPU"). seq stays the rowid and keeps every row's value, so (created, seq) orders as
    # before; a new row takes max(seq) + 1, after every row there is (only a deleted last row's seq
    # can come back, and nothing refers to a deleted row). The table is copied once.
    """
    CREATE TABLE responses_v5 (
        seq         INTEGER PRIMARY KEY,
        id          TEXT    NOT NULL UNIQUE,
        created     INTEGER NOT NULL,  -- the response's created_at
        model       TEXT    NOT NULL,
        response    BLOB    NOT NULL,  -- the response object, UTF-8 JSON
        input_items BLOB    NOT NULL,  -- the conversation's input items, UTF-8 JSON
        messages    BLOB    NOT NULL,  -- the conversation as chat messages, UTF-8 JSON
        owner       TEXT               -- the key that created it (server.auth on), else NULL
    );
    INSERT INTO responses_v5 (seq, id, created, model, response, input_items, messages, owner)
        SELECT seq, id, created, model, response, input_items, messages, owner FROM responses;
    DROP TABLE responses;
    ALTER TABLE responses_v5 RENAME TO responses;
    CREATE INDEX responses_order ON responses (created, seq);
    CREATE INDEX responses_model_order ON responses (model, created, seq);
    DELETE FROM sqlite_sequence WHERE name = 'responses';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(
    path: Path, *, busy_timeout_s: float, synchronous: str, query_only: bool = False
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with relaystack's pragmas.

    ``check_same_thread=False`` because ``stop()`` closes connections from another thread once
    their own thread is idle; each connection is still only *used* by one thread at a time.
    """
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False, cached_statements=64
        )
    except sqlite3.Error as exc:
        raise ConfigError(
            f"cannot open the database {path}: {exc}. Check storage.dir / storage.db_path."
        ) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        mode = _switch_to_wal(conn, busy_timeout_s)
        if str(mode).lower() != "wal":
            raise ConfigError(
                f"{path}: SQLite refused WAL mode (journal_mode is {mode}); use a local filesystem."
            )
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # after a checkpoint, truncate the WAL file back to 64 MiB instead of keeping its peak size
        conn.execute("PRAGMA journal_size_limit = 67108864")
        if query_only:
            conn.execute("PRAGMA query_only = 1")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(
            f"{path} is not a usable SQLite database ({exc}). Point storage.db_path at another file "
            "or move this one away."
        ) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> str:
    """``PRAGMA journal_mode = WAL``, retried while another process holds the file. Two processes
    opening a new file at once can each hold a shared lock the other must see released; SQLite then
    answers "database is locked" at once, without waiting on the busy timeout (it would deadlock)."""
    deadline = time.monotonic() + busy_timeout_s
    pause = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{path} has schema version {version}, newer than this relaystack understands "
                    f"({SCHEMA_VERSION}). Upgrade relaystack or point storage.db_path at another file."
                )
            for target in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[target]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot prepare the database {path}: {exc}.") from exc


def _statements(script: str) -> list[str]:
    """Split a migration into statements: ``executescript`` would COMMIT our open transaction."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]}")
    return out
