"""Session-wide fixtures: the real PostgreSQL every database test uses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support.pgharness import PgCluster, start_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, migrated database for this test only (superuser DSN)."""
    dsn = pg_cluster.create_database()
    try:
        yield dsn
    finally:
        pg_cluster.drop_database(dsn)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An autocommit connection to the test database; queue functions open their own transactions."""
    c = await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row)
    try:
        yield c
    finally:
        await c.close()
