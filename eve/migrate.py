"""Forward-only migrations from `sql/migrations/NNNN_name.sql`.

`migrate()` takes a session advisory lock (two migrators never race), records each
applied file with its checksum in `eve.schema_migrations`, applies each file in its own
transaction, and refuses a database whose applied history differs from the files
(edited, renamed or unknown migrations): that database was built from other code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import psycopg

from eve.db import connect
from eve.errors import MigrationError

MIGRATION_LOCK_KEY = 0x6576654D  # "eveM"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS eve;
CREATE TABLE IF NOT EXISTS eve.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    applied: list[int]
    pending: list[int]


def load_migrations() -> list[Migration]:
    folder = resources.files("eve.sql").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


async def _applied(conn: psycopg.AsyncConnection[Any]) -> dict[int, dict[str, Any]]:
    cur = await conn.execute("SELECT version, name, checksum FROM eve.schema_migrations ORDER BY version")
    return {row["version"]: row for row in await cur.fetchall()}


def _check_history(applied: dict[int, dict[str, Any]], files: list[Migration]) -> None:
    by_version = {m.version: m for m in files}
    for version, row in applied.items():
        mig = by_version.get(version)
        if mig is None:
            raise MigrationError(
                f"database has migration {version:04d}_{row['name']} which this code does not know; "
                "it was migrated by a newer or different eve-horizon"
            )
        if mig.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {version:04d}_{mig.name}.sql differs from the one applied to this database; "
                "migrations are forward-only: add a new file instead of editing an applied one"
            )


async def migrate(dsn: str) -> list[Migration]:
    """Apply pending migrations; returns the ones applied now (empty when up to date)."""
    files = load_migrations()
    conn = await connect(dsn, autocommit=True)
    applied_now: list[Migration] = []
    try:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            await conn.execute(_BOOTSTRAP)
            applied = await _applied(conn)
            _check_history(applied, files)
            for mig in files:
                if mig.version in applied:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(mig.sql)  # no parameters: several statements allowed
                        await conn.execute(
                            "INSERT INTO eve.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (mig.version, mig.name, mig.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {mig.version:04d}_{mig.name}.sql failed: {exc}") from exc
                applied_now.append(mig)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    finally:
        await conn.close()
    return applied_now


async def status(dsn: str) -> MigrationStatus:
    files = load_migrations()
    conn = await connect(dsn, autocommit=True)
    try:
        cur = await conn.execute("SELECT to_regclass('eve.schema_migrations') IS NOT NULL AS present")
        row = await cur.fetchone()
        applied = await _applied(conn) if row and row["present"] else {}
    finally:
        await conn.close()
    _check_history(applied, files)
    return MigrationStatus(applied=sorted(applied), pending=[m.version for m in files if m.version not in applied])
