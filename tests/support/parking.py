"""A request parked the way a worker leaves it after `eve wait`, for tests of what follows."""

from __future__ import annotations

from typing import Any

from eve import queue
from tests.support.tenants import Tenant


async def park_on_a_child(conn: Any, tenant: Tenant, *, worker_type: str = "general", worker_id: str = "w0",
                          child_type: str | None = None) -> tuple[Any, Any]:
    """(parent, child): the parent claimed by `worker_id`, waiting on a reply-to child (of
    `child_type`, default the parent's), parked by eve.request_park with no session stored."""
    parent = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type=worker_type,
                                 prompt="parent", priority=1)
    claimed = [r for r in await queue.claim(conn, worker_type, worker_id, limit=5) if r.id == parent.id]
    assert claimed, "the parent was not claimed"
    child = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id,
                                worker_type=child_type or worker_type, prompt="child", parent_id=parent.id)
    await conn.execute("INSERT INTO eve.request_waits (request_id, org_id, kind, ref_id) VALUES (%s, %s, 'child', %s)",
                       (parent.id, tenant.org_id, child.id))
    return parent, child


async def park(conn: Any, request_id: Any, worker_id: str = "w0") -> str | None:
    """eve.request_park: 'waiting', 'pending' (already resolved) or None (not held)."""
    return (await (await conn.execute("SELECT eve.request_park(%s, %s) AS s", (request_id, worker_id))).fetchone())["s"]
