"""Migrations: idempotent, race-free, history-checked; the schema fits every named query."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from eve import migrate
from eve.errors import MigrationError
from eve.pg import bin_dir
from eve.queries import load
from tests.support.pgharness import TEMPLATE, PgCluster, with_dbname


@pytest.fixture
def empty_db(pg_cluster: PgCluster) -> Iterator[str]:
    name = "eve_empty_for_migrations"
    with psycopg.connect(pg_cluster.admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    dsn = with_dbname(pg_cluster.admin_dsn, name)
    try:
        yield dsn
    finally:
        with psycopg.connect(pg_cluster.admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def schema_dump(dsn: str) -> str:
    out = subprocess.run([str(bin_dir() / "pg_dump"), "--schema-only", "--no-owner", "--schema=eve", dsn],
                         check=True, capture_output=True, text=True).stdout
    # drop comments and the per-dump random restrict key, keep the DDL
    return "\n".join(line for line in out.splitlines()
                     if line and not line.startswith("--") and not line.startswith("\\"))


async def test_migrating_an_empty_database_gives_the_template_schema(empty_db, pg_cluster):
    applied = await migrate.migrate(empty_db)
    assert [m.version for m in applied] == [m.version for m in migrate.load_migrations()]
    assert schema_dump(empty_db) == schema_dump(with_dbname(pg_cluster.admin_dsn, TEMPLATE))


async def test_migrate_is_idempotent_and_concurrent_migrators_do_not_race(empty_db):
    results = await asyncio.gather(*(migrate.migrate(empty_db) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(migrate.load_migrations())]
    assert await migrate.migrate(empty_db) == []
    st = await migrate.status(empty_db)
    assert st.pending == [] and st.applied == [m.version for m in migrate.load_migrations()]


async def test_status_of_an_empty_database_lists_everything_pending(empty_db):
    st = await migrate.status(empty_db)
    assert st.applied == [] and st.pending == [m.version for m in migrate.load_migrations()]


async def test_an_edited_migration_is_refused(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE eve.schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="differs from the one applied"):
        await migrate.migrate(db_url)


async def test_an_unknown_applied_migration_is_refused(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO eve.schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
    with pytest.raises(MigrationError, match="9999_future which this code does not know"):
        await migrate.migrate(db_url)


def _as_prepared(sql: str) -> str:
    names: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", sub, sql)


def test_every_named_query_prepares_against_the_schema(db_url):
    """PREPARE checks tables, columns, functions and types without running anything."""
    queries = load()
    assert len(queries) > 20
    with psycopg.connect(db_url, autocommit=True) as conn:
        for i, (name, sql) in enumerate(sorted(queries.items())):
            try:
                conn.execute(f"PREPARE q{i} AS {_as_prepared(sql)}")
            except psycopg.Error as exc:
                pytest.fail(f"query {name} does not fit the schema: {exc}")


def test_db_migrate_against_an_unreachable_database_is_one_line_and_exit_1():
    run = subprocess.run(
        [sys.executable, "-m", "eve.cli", "db", "migrate", "--database-url",
         "postgresql://nobody:x@127.0.0.1:1/nothing"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot connect to PostgreSQL at nobody@127.0.0.1:1")
