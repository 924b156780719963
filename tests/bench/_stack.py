"""What every benchmark starts from: its own PostgreSQL, migrated, with one tenant."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from eve import migrate
from eve.pg import EmbeddedPostgres
from tests.support.tenants import Tenant, make_tenant


async def _tenant(dsn: str) -> Tenant:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        return await make_tenant(c, "bench")


@contextmanager
def embedded_postgres(tmp: Path, **settings: str) -> Iterator[str]:
    """The admin DSN of a fresh embedded PostgreSQL (default, durable settings plus these),
    stopped afterwards, also on error. Peers' benchmarks make their own databases in it."""
    pg = EmbeddedPostgres(tmp / "pg", port=0, settings=settings)
    admin = pg.start()
    try:
        yield admin
    finally:
        pg.stop(mode="immediate")


@contextmanager
def bench_database(tmp: Path, **settings: str) -> Iterator[tuple[str, Tenant]]:
    """(DSN, tenant) on a fresh embedded PostgreSQL, migrated, stopped afterwards."""
    with embedded_postgres(tmp, **settings) as dsn:
        asyncio.run(migrate.migrate(dsn))
        yield dsn, asyncio.run(_tenant(dsn))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
