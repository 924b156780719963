"""NOTIFY discipline (migration 0003): only what a listener acts on, at most once per statement.

A notifying commit is serialised cluster-wide, so claims and finishes must not notify
when nobody needs to hear about them; what listeners act on must still arrive.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from eve import queue
from eve.models import Outcome
from eve.queries import Q
from tests.support.parking import park, park_on_a_child
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def tenant(conn) -> Tenant:
    return await make_tenant(conn, "notify")


@pytest.fixture
async def listener(db_url):
    c = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
    for channel in ("eve_requests", "eve_events", "eve_cancel"):
        await c.execute(f"LISTEN {channel}")
    try:
        yield c
    finally:
        await c.close()


async def _drain(listener: psycopg.AsyncConnection[Any], conn: psycopg.AsyncConnection[Any]) -> list[tuple[str, str]]:
    """Everything delivered so far: a marker notification sent last bounds the wait."""
    await conn.execute("NOTIFY eve_requests, 'marker'")
    got = []
    async for n in listener.notifies(timeout=10):
        if (n.channel, n.payload) == ("eve_requests", "marker"):
            break
        got.append((n.channel, n.payload))
    return got


async def _insert(conn, tenant, n: int, worker_type: str = "general") -> None:
    await conn.execute("""INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt)
                          SELECT %s, %s, %s, 'job' FROM generate_series(1, %s)""",
                       (tenant.org_id, tenant.user_id, worker_type, n))


async def test_a_bulk_insert_notifies_once_per_worker_type(conn, tenant, listener):
    await conn.execute("""INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt)
                          SELECT %s, %s, (ARRAY['general', 'data'])[1 + g %% 2], 'job'
                          FROM generate_series(1, 500) g""", (tenant.org_id, tenant.user_id))
    assert sorted(await _drain(listener, conn)) == [("eve_requests", "data"), ("eve_requests", "general")]


async def test_claims_and_finishes_do_not_notify_without_subscribers(conn, tenant, listener):
    await _insert(conn, tenant, 20)
    await _drain(listener, conn)
    claimed = await queue.claim(conn, "general", "w1", limit=20)
    for req in claimed[:10]:
        await queue.complete(conn, req, "w1", Outcome(status="success"))
    await queue.complete_many(conn, "w1", [(r, Outcome(status="success")) for r in claimed[10:]])
    assert await _drain(listener, conn) == []


async def test_events_notify_once_per_statement_while_a_listener_is_announced(conn, tenant, listener):
    await _insert(conn, tenant, 5)
    await conn.execute(Q.api_event_listener_announce, {"id": "api-1", "ttl_seconds": 60})
    await _drain(listener, conn)
    claimed = await queue.claim(conn, "general", "w1", limit=5)  # five `claimed` events, one statement
    got = await _drain(listener, conn)
    assert [c for c, _ in got] == ["eve_events"]
    ids = json.loads(got[0][1])["ids"]
    events = await conn.execute("SELECT id FROM eve.request_events WHERE kind = 'claimed' ORDER BY id")
    assert ids == [r["id"] for r in await events.fetchall()]
    # a big statement is split into payloads that stay under NOTIFY's 8000 bytes
    await queue.append_events(conn, claimed[0].id, claimed[0].org_id, [("text", {"i": i}) for i in range(1000)])
    got = await _drain(listener, conn)
    assert [len(json.loads(p)["ids"]) for _, p in got] == [400, 400, 200]


async def test_an_expired_or_withdrawn_announcement_stops_event_notifications(conn, tenant, listener):
    await _insert(conn, tenant, 1)
    await conn.execute(Q.api_event_listener_announce, {"id": "api-1", "ttl_seconds": -1})
    await _drain(listener, conn)
    await queue.claim(conn, "general", "w1")
    assert await _drain(listener, conn) == []
    await conn.execute(Q.api_event_listener_announce, {"id": "api-1", "ttl_seconds": 60})
    await conn.execute(Q.api_event_listener_withdraw, {"id": "api-1"})
    [req] = await queue.claim(conn, "general", "w1") or [None]
    assert req is None
    assert await _drain(listener, conn) == []


async def test_work_that_becomes_runnable_again_wakes_workers(conn, tenant, listener):
    first = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                prompt="first")
    await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="data",
                        prompt="blocked", blocked_by=[first.id])
    assert await _drain(listener, conn) == [("eve_requests", "general")]  # the blocked one is not runnable
    [c] = await queue.claim(conn, "general", "w1")
    await queue.requeue(conn, c, "w1", "worker_shutdown")
    assert await _drain(listener, conn) == [("eve_requests", "general")]
    [c] = await queue.claim(conn, "general", "w1")
    await queue.complete(conn, c, "w1", Outcome(status="success"))  # unblocks the `data` request
    assert await _drain(listener, conn) == [("eve_requests", "data")]


async def test_a_cancel_flag_notifies_once(conn, tenant, listener):
    req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                              prompt="x")
    await queue.claim(conn, "general", "w1")
    await _drain(listener, conn)
    await queue.request_cancel(conn, req.id)
    await queue.request_cancel(conn, req.id)  # flagged already: no second notification
    assert await _drain(listener, conn) == [("eve_cancel", str(req.id))]


async def test_a_waiting_request_that_is_cancelled_notifies_eve_cancel_and_a_pending_one_does_not(
        conn, tenant, listener):
    """0019: the host that holds a parked request's workspace learns that nobody resumes it."""
    parent, child = await park_on_a_child(conn, tenant, worker_id="w1")
    assert await park(conn, parent.id, "w1") == "waiting"
    await _drain(listener, conn)
    await queue.request_cancel(conn, child.id)  # pending: no workspace anywhere, nothing to say
    assert await _drain(listener, conn) == [("eve_requests", "general")]  # (the parent woke)
    # the child's result woke the parent (pending again); park it once more, then cancel it waiting
    other = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                prompt="child 2", parent_id=parent.id)
    [again] = [r for r in await queue.claim(conn, "general", "w1", limit=5) if r.id == parent.id]
    await conn.execute("INSERT INTO eve.request_waits (request_id, org_id, kind, ref_id) VALUES (%s, %s, 'child', %s)",
                       (parent.id, tenant.org_id, other.id))
    assert await park(conn, again.id, "w1") == "waiting"
    await _drain(listener, conn)
    await queue.request_cancel(conn, parent.id)
    assert ("eve_cancel", str(parent.id)) in await _drain(listener, conn)
