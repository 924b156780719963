"""Database connections: plain connects, pools, and the per-transaction identity.

Two identities matter (see sql/migrations/0001_initial.sql):

* `service_role` for workers, the reaper and admin commands: RLS does not apply.
* `eve_api` with `eve.user_id` set for one transaction: RLS decides what exists.
  The API only ever takes this one (its login role under `eve up` is a member of
  eve_api only); what it reads across orgs goes through definer functions.

Both are NOLOGIN group roles; connections are made with whatever login the DSN names
and switch roles for one transaction only (`set_config('role', ..., true)`, which is
`SET LOCAL ROLE`), so a pooled connection can never leak one caller's identity into the
next transaction.

Round trips are the API's cost per request, so a pooled transaction (`as_user`,
`as_service`) opens with BEGIN and its identity in one round trip and ends with COMMIT:
two round trips around the work. A transaction of one statement with nothing to read
first (POST /requests, usually) goes in one round trip (`one_statement_as_user`).
Pooled connections are not health-checked at checkout (that was one more round trip
each time); a connection found broken when the transaction opens, before anything ran,
is dropped and the transaction retried on a fresh one.
"""

from __future__ import annotations

import os
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
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


def make_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, name: str = "eve",
              service_only: bool = False) -> AsyncConnectionPool:
    """A pool opened later by the owner (`await pool.open(wait=True)`), rows as dicts.

    No check at checkout: `as_user`/`as_service` reconnect when a connection turns out
    broken instead (after a database restart, say).

    `service_only` (the worker's pool: it never acts for a user) makes every connection
    `service_role` for its whole session, so `as_service` needs no transaction around
    each statement: one round trip instead of three. Every eve function that writes more
    than one statement opens its own transaction, so nothing relies on the outer one.
    """
    async def as_service_session(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute("SET ROLE service_role")

    # behind PgBouncer (poll-only mode) nothing may live in the session: the role is then
    # taken per transaction like everywhere else
    service_only = service_only and listen_enabled()

    return (ServicePool if service_only else AsyncConnectionPool)(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        # autocommit: transactions are explicit (_transaction); no prepared statements behind PgBouncer
        kwargs={"row_factory": dict_row, "autocommit": True, **_session_kwargs()},
        configure=as_service_session if service_only else None,
        reconnect_timeout=float("inf"),
    )


class ServicePool(AsyncConnectionPool):
    """A pool whose connections are `service_role` for the whole session (make_pool(service_only=True))."""


async def set_identity(conn: psycopg.AsyncConnection[Any], *, user_id: UUID | str | None) -> None:
    """Inside an open transaction: become `eve_api` acting for `user_id`."""
    await conn.execute("SET LOCAL ROLE eve_api")
    await conn.execute("SELECT set_config('eve.user_id', %s, true)", (str(user_id) if user_id else "",))


async def set_service(conn: psycopg.AsyncConnection[Any]) -> None:
    """Inside an open transaction: become `service_role` (workers, admin)."""
    await conn.execute("SET LOCAL ROLE service_role")


# BEGIN and the identity in one simple-protocol message (no parameters allowed there, so
# the user id goes in as a quoted literal of a parsed UUID).
_BEGIN_AS_USER = sql.SQL("BEGIN; SELECT set_config('role', 'eve_api', true), set_config('eve.user_id', {}, true)")
_BEGIN_AS_SERVICE = sql.SQL("BEGIN; SELECT set_config('role', 'service_role', true)")
_BEGIN_AS_API = sql.SQL("BEGIN; SELECT set_config('role', 'eve_api', true), set_config('eve.user_id', '', true)")


@asynccontextmanager
async def _transaction(pool: AsyncConnectionPool, begin: sql.Composable) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """BEGIN + identity in one round trip, the caller's statements, COMMIT (ROLLBACK on error).

    Statements inside may still use `conn.transaction()`: it becomes a savepoint.
    """
    for attempt in (1, 2):
        async with pool.connection() as conn:
            try:
                await conn.execute(begin)
            except psycopg.OperationalError:
                if attempt == 2 or not conn.closed:
                    raise
                # the connection died while idle in the pool and nothing ran on it: the
                # others may be dead too (a database restart), so check them and go again
            else:
                try:
                    yield conn
                except BaseException:
                    await _rollback_quietly(conn)
                    raise
                await conn.execute("COMMIT")
                return
        await pool.check()


async def _rollback_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    """After a failure inside a transaction: leave the connection clean for the next caller."""
    if not conn.closed:
        try:
            await conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the pool discards a connection it cannot reset


@asynccontextmanager
async def as_user(pool: AsyncConnectionPool, user_id: UUID | str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction under RLS for one caller."""
    uid = str(UUID(str(user_id)))  # a UUID and nothing else reaches the literal
    async with _transaction(pool, _BEGIN_AS_USER.format(sql.Literal(uid))) as conn:
        yield conn


_IDENTITY = "SELECT set_config('role', 'eve_api', true), set_config('eve.user_id', %s, true)"


async def one_statement_as_user(pool: AsyncConnectionPool, user_id: UUID | str, query: str,
                                params: dict[str, Any]) -> list[dict[str, Any]]:
    """One statement in its own transaction as the caller, in ONE round trip: the identity
    and the statement go out together, then a Sync (psycopg's pipeline mode).

    For the API's hottest path (POST /requests with nothing to read first): every round
    trip costs both processes a send, a wake-up and a poll, which on the two-core box was
    16% of the CPU of a whole insert on each side (three round trips against one).

    No BEGIN or COMMIT: on an autocommit connection, everything PostgreSQL receives up to
    the pipeline's Sync is one implicit transaction, so the identity (`set_config(...,
    true)`) holds for the statement and ends with it, and the Sync commits both. Two
    statements instead of four cut the API's CPU per POST by a fifth (1.03 -> 0.82 ms).
    tests/integration/test_one_round_trip.py checks the role the statement runs as. One
    consequence: psycopg sends the Sync when the pipeline block exits, also on an error
    (a task cancelled at shutdown, say), so a statement that already succeeded is committed
    then; its caller gets the error, as with any answer lost after the commit.

    A pipeline cannot be retried blindly: if the connection breaks while waiting for the
    answer, the commit may have happened. So a pooled connection is checked before
    anything is sent, without a round trip: a healthy idle connection has nothing to read,
    while one whose server went away (a restart) reads as closed or holds the server's
    goodbye. Such a connection is dropped, the pool checks the others, and the next is
    used; after two, the ordinary transaction (`as_user`) runs the statement. A failure
    after sending is raised (a 503), as a lost COMMIT is on any path.
    """
    uid = str(UUID(str(user_id)))  # a UUID and nothing else
    for _ in range(2):
        async with pool.connection() as conn:
            if _server_went_away(conn):
                await conn.close()  # the pool discards it when it comes back
                await pool.check()  # a restart takes every pooled connection with it
                continue
            try:
                async with conn.pipeline():
                    await conn.execute(_IDENTITY, (uid,))
                    cur = await conn.execute(query, params)
                return await cur.fetchall()
            except BaseException:
                await _rollback_quietly(conn)
                raise
    # two suspect connections in a row: the ordinary path, whose BEGIN finds out safely
    async with as_user(pool, uid) as conn:
        return await (await conn.execute(query, params)).fetchall()


def _server_went_away(conn: psycopg.AsyncConnection[Any]) -> bool:
    """True when an idle pooled connection has something to read: end of stream or the
    server's last words. (The pool's connections do not LISTEN, so nothing else arrives.)"""
    if conn.closed:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


@asynccontextmanager
async def as_api(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction as `eve_api` acting for nobody: RLS shows no tenant rows. For the API's
    unauthenticated work (token exchange through definer functions, health checks) and
    its platform-wide reads through the `eve.api_*` definer functions (migration 0007)."""
    async with _transaction(pool, _BEGIN_AS_API) as conn:
        yield conn


@asynccontextmanager
async def as_service(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction as the service role; on a `service_only` pool, an autocommit connection
    that already is the service role (multi-statement eve functions open their own)."""
    if isinstance(pool, ServicePool):
        # a dead connection fails the first statement, the pool drops it on return, and the
        # caller's retry (the worker's with_db) gets a fresh one
        async with pool.connection() as conn:
            yield conn
        return
    async with _transaction(pool, _BEGIN_AS_SERVICE) as conn:
        yield conn
