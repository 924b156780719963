"""One PostgreSQL per test session, a migrated template, a fresh database per test.

`EVE_TEST_DATABASE_URL` (a superuser DSN) points the suite at an existing server
instead of starting the embedded one. Databases are created from the template with
`CREATE DATABASE ... TEMPLATE`, which copies files and takes a few milliseconds.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eve import migrate
from eve.pg import EmbeddedPostgres

TEMPLATE = "eve_template"
# Test clusters trade durability for speed: nothing in them outlives the session.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300"}

_counter = itertools.count(1)


def with_dbname(dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


@dataclass
class PgCluster:
    admin_dsn: str
    pg: EmbeddedPostgres | None
    tmp: tempfile.TemporaryDirectory[str] | None

    def create_database(self) -> str:
        name = f"eve_test_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
        return with_dbname(self.admin_dsn, name)

    def drop_database(self, dsn: str) -> None:
        name = conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop(mode="immediate")
        if self.tmp is not None:
            self.tmp.cleanup()


def start_cluster() -> PgCluster:
    external = os.environ.get("EVE_TEST_DATABASE_URL")
    pg = tmp = None
    if external:
        admin_dsn = external
    else:
        tmp = tempfile.TemporaryDirectory(prefix="eve-test-pg-")
        pg = EmbeddedPostgres(Path(tmp.name) / "pg", port=0, settings=FAST_SETTINGS)
        admin_dsn = pg.start()
    cluster = PgCluster(admin_dsn=admin_dsn, pg=pg, tmp=tmp)
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        asyncio.run(migrate.migrate(with_dbname(admin_dsn, TEMPLATE)))
    except BaseException:
        cluster.close()
        raise
    return cluster
