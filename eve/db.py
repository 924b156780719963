"""Database connections: plain connects, pools, and the per-transaction identity.

Two identities matter (see sql/migrations/0001_initial.sql):

* `service_role` for workers, the reaper and admin commands: RLS does not apply.
* `eve_api` with `eve.user_id` set for one transaction: RLS decides what exists.
  The API only ever takes this one (its login role under `eve up` is a member of
  eve_api only); what it reads across orgs goes through definer functions.

Both are NOLOGIN group roles; connections are made with whatever login the DSN names
and switch with `SET LOCAL ROLE` inside each transaction, so a pooled connection can
never leak one caller's identity into the next transaction.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from eve.errors import DatabaseUnavailable

API_ROLE = "eve_api"
SERVICE_ROLE = "service_role"


def listen_enabled() -> bool:
    """False with EVE_LISTEN=off: poll-only mode for PgBouncer in transaction pooling.

    There a server connection serves another client after every transaction, so nothing
    may outlive one: no LISTEN (pickup and SSE poll instead), no session-level SET (eve
    only uses SET LOCAL / set_config(..., true)), no session advisory locks (the reaper's
    lock is transaction-scoped; the migrator must connect to PostgreSQL directly), and no
    server-side prepared statements (psycopg's `prepare_threshold=None` below).
    """
    return os.environ.get("EVE_LISTEN", "on").strip().lower() not in ("off", "0", "false", "no")


def _session_kwargs() -> dict[str, Any]:
    return {} if listen_enabled() else {"prepare_threshold": None}


def describe(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    info.pop("password", None)
    host = info.get("host", "localhost")
    port = info.get("port", "5432")
    return f"{info.get('user', '')}@{host}:{port}/{info.get('dbname', '')}"


async def connect(dsn: str, *, autocommit: bool = True, timeout: float = 5.0) -> psycopg.AsyncConnection[Any]:
    """One connection, or DatabaseUnavailable with a one-line reason.

    Autocommit by default: every eve function that writes more than one statement opens
    its own `conn.transaction()`, which on an autocommit connection is a real
    BEGIN/COMMIT. (On a non-autocommit connection, a stray read first would turn those
    blocks into savepoints of an implicit transaction that closing the connection rolls back.)
    """
    try:
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=autocommit, connect_timeout=max(1, int(timeout)), row_factory=dict_row,
            **_session_kwargs(),
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {describe(dsn)}: {reason}") from exc


def make_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, name: str = "eve") -> AsyncConnectionPool:
    """A pool opened later by the owner (`await pool.open(wait=True)`), rows as dicts."""
    return AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        kwargs={"row_factory": dict_row, **_session_kwargs()},
        check=AsyncConnectionPool.check_connection,
        reconnect_timeout=float("inf"),
    )


async def set_identity(conn: psycopg.AsyncConnection[Any], *, user_id: UUID | str | None) -> None:
    """Inside an open transaction: become `eve_api` acting for `user_id`."""
    await conn.execute("SET LOCAL ROLE eve_api")
    await conn.execute("SELECT set_config('eve.user_id', %s, true)", (str(user_id) if user_id else "",))


async def set_service(conn: psycopg.AsyncConnection[Any]) -> None:
    """Inside an open transaction: become `service_role` (workers, admin)."""
    await conn.execute("SET LOCAL ROLE service_role")


@asynccontextmanager
async def as_user(pool: AsyncConnectionPool, user_id: UUID | str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction under RLS for one caller."""
    async with pool.connection() as conn, conn.transaction():
        await set_identity(conn, user_id=user_id)
        yield conn


@asynccontextmanager
async def as_api(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction as `eve_api` acting for nobody: RLS shows no tenant rows. For the API's
    unauthenticated work (token exchange through definer functions, health checks) and
    its platform-wide reads through the `eve.api_*` definer functions (migration 0007)."""
    async with pool.connection() as conn, conn.transaction():
        await set_identity(conn, user_id=None)
        yield conn


@asynccontextmanager
async def as_service(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction as the service role."""
    async with pool.connection() as conn, conn.transaction():
        await set_service(conn)
        yield conn
