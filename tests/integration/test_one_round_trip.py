"""eve.db.one_statement_as_user: identity and one statement in one implicit transaction,
in one round trip — and what happens when that statement fails, or the pooled connection
is dead.

A pipeline cannot be retried once sent (its commit may have happened), so a dead
connection must be noticed before anything is sent, and a failed statement must leave
nothing behind: no row, no open transaction on the connection the pool hands out next.
"""

from __future__ import annotations

import psycopg
import pytest

from eve import db, queue
from eve.db import make_pool, one_statement_as_user
from eve.queries import Q
from tests.support.tenants import make_tenant
from tests.support.waiting import async_wait_for

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def pool(db_url):
    p = make_pool(db_url, min_size=1, max_size=1, name="one-trip")
    await p.open(wait=True)
    try:
        yield p
    finally:
        await p.close()


async def _params(conn, tenant, prompt: str):
    wt = await queue.get_worker_type(conn, "general")
    return queue.insert_params(wt, org_id=tenant.org_id, user_id=tenant.user_id, prompt=prompt)


async def _count(conn, prompt: str) -> int:
    row = await (await conn.execute("SELECT count(*) AS n FROM eve.orchestration_requests WHERE prompt = %s",
                                    (prompt,))).fetchone()
    return row["n"]


async def test_it_inserts_as_the_caller_under_rls(conn, pool):
    t, other = await make_tenant(conn, "one"), await make_tenant(conn, "other")
    [row] = await one_statement_as_user(pool, t.user_id, Q.request_insert, await _params(conn, t, "mine"))
    assert row["org_id"] == t.org_id and row["status"] == "pending"
    assert await _count(conn, "mine") == 1
    # the identity is the caller's: RLS refuses a row in an org the caller is not in
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await one_statement_as_user(pool, t.user_id, Q.request_insert, await _params(conn, other, "theirs"))
    assert await _count(conn, "theirs") == 0


async def test_the_identity_holds_for_the_statement_and_ends_with_it(conn, pool):
    """No BEGIN is sent: the identity and the statement share the implicit transaction that
    the pipeline's Sync ends. Were they two transactions, the statement would run as the
    pool's login role, outside RLS, with no user id."""
    t = await make_tenant(conn, "ident")
    for _ in range(7):  # also once psycopg prepares the statements (after 5 runs)
        [row] = await one_statement_as_user(
            pool, t.user_id, "SELECT current_user AS role, current_setting('eve.user_id', true) AS uid, "
                             "eve.current_user_id() AS caller", {})
        assert row == {"role": "eve_api", "uid": str(t.user_id), "caller": t.user_id}
    async with pool.connection() as c:  # and none of it outlives the statement
        after = await (await c.execute("SELECT current_user AS role, current_setting('eve.user_id', true) AS uid")).fetchone()
        assert after["role"] != "eve_api" and not after["uid"]
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def test_a_failed_statement_leaves_nothing_and_a_clean_connection(conn, pool):
    t = await make_tenant(conn, "fail")
    other = await make_tenant(conn, "fail-other")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await one_statement_as_user(pool, t.user_id, Q.request_insert, await _params(conn, other, "refused"))
    async with pool.connection() as c:  # the pool's only connection: idle, no transaction left open
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert (await (await c.execute("SELECT current_user AS u")).fetchone())["u"] != "eve_api"
    [row] = await one_statement_as_user(pool, t.user_id, Q.request_insert, await _params(conn, t, "after"))
    assert row["prompt"] == "after"
    assert await _count(conn, "refused") == 0


async def test_a_dead_pooled_connection_is_replaced_before_anything_is_sent(conn, pool):
    t = await make_tenant(conn, "dead")
    await one_statement_as_user(pool, t.user_id, Q.request_insert, await _params(conn, t, "first"))
    async with pool.connection() as c:
        pid = c.info.backend_pid
    await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))  # as a restart does
    # pg_terminate_backend only signals: wait until the backend has exited (and so closed
    # its socket). A connection that dies after the check, while the pipeline is on its
    # way, is the documented 503 case, not this one.
    async def gone() -> bool:
        cur = await conn.execute("SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s) AS gone", (pid,))
        return (await cur.fetchone())["gone"]
    await async_wait_for(gone, 10, f"backend {pid} to exit")
    [row] = await one_statement_as_user(pool, t.user_id, Q.request_insert, await _params(conn, t, "second"))
    assert row["prompt"] == "second"
    assert await _count(conn, "second") == 1  # exactly once: not retried after sending
    async with pool.connection() as c:
        assert c.info.backend_pid != pid


async def test_when_every_connection_looks_suspect_the_ordinary_transaction_runs_it(conn, pool, monkeypatch):
    """Whatever makes an idle connection readable (a server that went away, or something
    we did not foresee), a POST is never refused for it: after two suspect connections
    the statement runs in the ordinary BEGIN / statement / COMMIT transaction."""
    t = await make_tenant(conn, "suspect")
    monkeypatch.setattr(db, "_server_went_away", lambda c: True)
    [row] = await one_statement_as_user(pool, t.user_id, Q.request_insert, await _params(conn, t, "fallback"))
    assert row["prompt"] == "fallback" and row["org_id"] == t.org_id
    assert await _count(conn, "fallback") == 1
