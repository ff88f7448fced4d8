"""Versioned schema migrations for PostgreSQL, safe when several instances start at once.

The schema is made of *table groups* (stored chat completions, registered models, ...), each
with its own version in ``relaystack_schema``: ``TableGroup.migrations[i]`` moves a group from
version ``i`` to ``i + 1``. Groups are versioned separately so a new group (stored responses,
keys, usage) is one module with its own list, and two branches adding groups never fight over
one global version number.

Every instance runs ``migrate`` at start-up, in ONE transaction under a transaction-scoped
advisory lock: the first instance migrates, the others wait on the lock, then find every group
up to date. PostgreSQL's DDL is transactional, so a migration that fails leaves nothing behind.
A database whose group is newer than this relaystack knows is refused, naming the group.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from relaystack.errors import ConfigError

__all__ = ["MIGRATION_LOCK", "TableGroup", "migrate"]

# pg_advisory_xact_lock key: "relaystack" as a number, shared by every relaystack on the database
MIGRATION_LOCK = 0x72656C6179737461

_CREATE_VERSIONS = """
CREATE TABLE IF NOT EXISTS relaystack_schema (
    table_group TEXT PRIMARY KEY,
    version     INTEGER NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class TableGroup:
    name: str
    # migrations[i]: SQL (one or more statements) from version i to i + 1; never edit a shipped one
    migrations: tuple[str, ...]

    @property
    def version(self) -> int:
        return len(self.migrations)


async def migrate(conn: asyncpg.Connection, groups: Iterable[TableGroup], where: str) -> dict[str, int]:
    """Bring every group up to date; returns ``{group: version}`` as found before migrating."""
    found: dict[str, int] = {}
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(_CREATE_VERSIONS)
        versions = {row["table_group"]: row["version"]
                    for row in await conn.fetch("SELECT table_group, version FROM relaystack_schema")}
        for group in groups:
            current = versions.get(group.name, 0)
            found[group.name] = current
            if current > group.version:
                raise ConfigError(
                    f"The PostgreSQL database {where} has table group '{group.name}' at schema version "
                    f"{current}, newer than this relaystack understands ({group.version}). Upgrade relaystack "
                    "or point storage.dsn at another database."
                )
            for target in range(current, group.version):
                await conn.execute(group.migrations[target])
            if current != group.version:
                await conn.execute(
                    "INSERT INTO relaystack_schema (table_group, version) VALUES ($1, $2) "
                    "ON CONFLICT (table_group) DO UPDATE SET version = excluded.version",
                    group.name, group.version,
                )
    return found
