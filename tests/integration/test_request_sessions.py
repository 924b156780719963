"""Stored sessions in the database: totals add up across turns, and a result drops the session."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from eve import queue, waiting
from eve.models import Outcome
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def tenant(conn: psycopg.AsyncConnection[Any]) -> Tenant:
    return await make_tenant(conn, "sessions")


async def _park_with_child(conn: Any, tenant: Tenant, parent_id: Any, turn: Outcome) -> Any:
    child = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                prompt="child", parent_id=parent_id, reply_to={"type": "parent"})
    await conn.execute("INSERT INTO eve.request_waits (request_id, org_id, kind, ref_id) VALUES (%s, %s, 'child', %s)",
                       (parent_id, tenant.org_id, child.id))
    status = await waiting.park(conn, request_id=parent_id, org_id=tenant.org_id, worker_id="w1",
                                session_id="s-1234567", transcript=b"gz", transcript_path="projects/x/s-1234567.jsonl", archive=None,
                                host="h", workspace_path="/ws", outcome=turn)
    assert status == "waiting"
    return child


async def test_totals_add_up_and_the_result_drops_the_session(conn, tenant):
    parent = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                 prompt="parent", priority=10)
    for turn in (1, 2):
        [claimed] = await queue.claim(conn, "general", "w1", limit=1)
        assert claimed.id == parent.id and claimed.resumes == turn - 1
        child = await _park_with_child(conn, tenant, parent.id,
                                       Outcome(status="success", duration_ms=1000, tokens_used=10, cost_usd=0.5))
        [c] = await queue.claim(conn, "general", "w2", limit=1)
        assert c.id == child.id
        await queue.complete(conn, c, "w2", Outcome(status="success", summary=f"child {turn}"))
        state = await waiting.resume_state(conn, parent.id)
        assert state.outcomes == [f"child {child.id} success: child {turn}"]
        await waiting.delivered(conn, state.wait_ids)
    session = (await waiting.resume_state(conn, parent.id)).session
    assert session["turns"] == 2 and session["active_ms"] == 2000 and session["tokens_used"] == 20
    [last] = await queue.claim(conn, "general", "w1", limit=1)
    assert last.id == parent.id and last.resumes == 2 and last.attempts == 1  # waiting used no attempt
    final = waiting.add_totals(Outcome(status="success", duration_ms=500, tokens_used=5, cost_usd=0.25), session)
    assert (final.duration_ms, final.tokens_used, final.cost_usd) == (2500, 25, 1.25)
    await queue.complete(conn, last, "w1", final)
    assert (await waiting.resume_state(conn, parent.id)).session is None


async def test_cancelling_a_waiting_parent_drops_its_session(conn, tenant):
    parent = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                 prompt="parent", priority=10)
    await queue.claim(conn, "general", "w1", limit=1)
    await _park_with_child(conn, tenant, parent.id, Outcome(status="success"))
    await queue.request_cancel(conn, parent.id)
    assert (await waiting.resume_state(conn, parent.id)).session is None


async def test_park_by_a_worker_that_lost_the_request_stores_nothing(conn, tenant):
    parent = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                 prompt="parent")
    await queue.claim(conn, "general", "w1", limit=1)
    status = await waiting.park(conn, request_id=parent.id, org_id=tenant.org_id, worker_id="not-me",
                                session_id="s-1234567", transcript=b"gz", transcript_path=None, archive=None,
                                host="h", workspace_path="/ws", outcome=Outcome(status="success"))
    assert status is None
    assert (await waiting.resume_state(conn, parent.id)).session is None
