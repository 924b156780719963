"""The waiting/wake-up mechanism of 0009 in SQL: park, resolve, wake — no wake-up lost.

Orchestration (reply-to children) and HITL (questions) both build on these functions;
the worker and API paths have their own tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import queue
from eve.models import Outcome
from tests.integration.test_least_privilege import split  # noqa: F401  (fixture)
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def tenant(conn: psycopg.AsyncConnection[Any]) -> Tenant:
    return await make_tenant(conn, "acme")


async def _claimed(conn: Any, tenant: Tenant, worker: str = "w1", **kw: Any) -> Any:
    req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id,
                              worker_type="general", prompt="p", **kw)
    [claimed] = await queue.claim(conn, "general", worker, limit=1)
    assert claimed.id == req.id
    return claimed


async def _child(conn: Any, tenant: Tenant, parent_id: Any) -> Any:
    child = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id,
                                worker_type="general", prompt="child")
    await conn.execute(
        "UPDATE eve.orchestration_requests SET parent_id = %s, reply_to = '{\"type\": \"parent\"}' WHERE id = %s",
        (parent_id, child.id))
    await conn.execute("INSERT INTO eve.request_waits (request_id, org_id, kind, ref_id) VALUES (%s, %s, 'child', %s)",
                       (parent_id, tenant.org_id, child.id))
    return child


async def _status(conn: Any, request_id: Any) -> tuple[str, int]:
    cur = await conn.execute("SELECT status, resumes FROM eve.orchestration_requests WHERE id = %s", (request_id,))
    row = await cur.fetchone()
    return row["status"], row["resumes"]


async def _park(conn: Any, request_id: Any, worker: str = "w1") -> str | None:
    cur = await conn.execute("SELECT eve.request_park(%s, %s) AS s", (request_id, worker))
    return (await cur.fetchone())["s"]


async def test_parked_parent_is_woken_by_its_last_childs_result(conn, tenant):
    parent = await _claimed(conn, tenant)
    a = await _child(conn, tenant, parent.id)
    b = await _child(conn, tenant, parent.id)
    assert await _park(conn, parent.id) == "waiting"
    assert await _status(conn, parent.id) == ("waiting", 0)

    for child, summary in ((a, "did a"), (b, "did b")):
        [claimed] = await queue.claim(conn, "general", "w2", limit=1)
        assert claimed.id == child.id
        await queue.complete(conn, claimed, "w2", Outcome(status="success", summary=summary))
        if child is a:
            assert await _status(conn, parent.id) == ("waiting", 0)  # b still open
    assert await _status(conn, parent.id) == ("pending", 1)
    cur = await conn.execute("SELECT outcome FROM eve.request_waits WHERE request_id = %s ORDER BY resolved_at",
                             (parent.id,))
    outcomes = [r["outcome"] for r in await cur.fetchall()]
    assert outcomes == [f"child {a.id} success: did a", f"child {b.id} success: did b"]
    kinds = [e.kind for e in await queue.list_events(conn, parent.id)]
    assert kinds[-2:] == ["waiting", "woken"]


async def test_park_after_every_child_finished_goes_straight_back_to_pending(conn, tenant):
    parent = await _claimed(conn, tenant)
    child = await _child(conn, tenant, parent.id)
    [claimed] = await queue.claim(conn, "general", "w2", limit=1)
    assert claimed.id == child.id
    await queue.complete(conn, claimed, "w2", Outcome(status="failed", error="boom", error_code="agent_error"))
    assert await _status(conn, parent.id) == ("processing", 0) or await _status(conn, parent.id) == ("claimed", 0)
    assert await _park(conn, parent.id) == "pending"
    assert await _status(conn, parent.id) == ("pending", 1)


async def test_only_the_holding_worker_can_park(conn, tenant):
    parent = await _claimed(conn, tenant)
    assert await _park(conn, parent.id, worker="someone-else") is None
    assert (await _status(conn, parent.id))[0] == "claimed"


async def test_resolving_twice_resolves_once(conn, tenant):
    parent = await _claimed(conn, tenant)
    child = await _child(conn, tenant, parent.id)
    await _park(conn, parent.id)
    first = await (await conn.execute("SELECT eve.request_resolve_wait('child', %s, 'x') AS r", (child.id,))).fetchone()
    second = await (await conn.execute("SELECT eve.request_resolve_wait('child', %s, 'y') AS r", (child.id,))).fetchone()
    assert first["r"] == parent.id and second["r"] is None
    assert await _status(conn, parent.id) == ("pending", 1)


async def test_no_wake_up_is_lost_when_park_and_the_last_result_race(db_url, conn, tenant):
    """Park and the child's result in two transactions, interleaved both ways: the parent
    always ends pending (woken), never stuck in waiting."""
    for park_first in (True, False):
        parent = await _claimed(conn, tenant)
        child = await _child(conn, tenant, parent.id)
        [claimed] = await queue.claim(conn, "general", "w2", limit=1)
        async with await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as c1, \
                await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as c2:
            t_park = c1.transaction()
            t_fin = c2.transaction()
            await t_park.__aenter__()
            await t_fin.__aenter__()
            if park_first:
                await c1.execute("SELECT eve.request_park(%s, 'w1')", (parent.id,))
                fin = asyncio.create_task(queue.complete(c2, claimed, "w2", Outcome(status="success", summary="s")))
                await asyncio.sleep(0.2)  # let it block on the parent's row lock, if it would
                await t_park.__aexit__(None, None, None)
                await fin
                await t_fin.__aexit__(None, None, None)
            else:
                await queue.complete(c2, claimed, "w2", Outcome(status="success", summary="s"))
                park = asyncio.create_task(c1.execute("SELECT eve.request_park(%s, 'w1')", (parent.id,)))
                await asyncio.sleep(0.2)
                await t_fin.__aexit__(None, None, None)
                await park
                await t_park.__aexit__(None, None, None)
        assert await _status(conn, parent.id) == ("pending", 1), f"park_first={park_first}"
        await conn.execute("UPDATE eve.orchestration_requests SET status = 'completed' WHERE id = %s", (parent.id,))


async def test_api_role_cannot_resolve_another_orgs_wait(split, conn, tenant):
    other = await make_tenant(conn, "globex")
    parent = await _claimed(conn, tenant)
    child = await _child(conn, tenant, parent.id)
    await _park(conn, parent.id)
    async with await psycopg.AsyncConnection.connect(split["api"], row_factory=dict_row) as api:
        for who, resolved in ((other, None), (tenant, parent.id)):
            async with api.transaction():
                await api.execute("SET LOCAL ROLE eve_api")
                await api.execute("SELECT set_config('eve.user_id', %s, true)", (str(who.user_id),))
                visible = await (await api.execute("SELECT count(*) AS n FROM eve.request_waits")).fetchone()
                assert visible["n"] == (0 if who is other else 1)  # RLS on the waits
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    async with api.transaction():
                        await api.execute("SELECT * FROM eve.request_sessions")
                cur = await api.execute("SELECT eve.request_resolve_wait('child', %s, 'forged') AS r", (child.id,))
                assert (await cur.fetchone())["r"] == resolved
            expected = "waiting" if who is other else "pending"
            assert (await _status(conn, parent.id))[0] == expected
