"""Threat: a worker that lost its claim (its lease ran out and the reaper gave the request to
another worker, e.g. after a network partition) comes back and writes its result while the
new holder's agent still runs: two agents' outcomes for one request, the wrong one kept.
complete() writes only while the caller holds the claim (eve/queue.py, finish_request)."""

from __future__ import annotations

import pytest

from eve import queue
from eve.errors import ResultConflict
from eve.models import Outcome
from tests.support.tenants import make_tenant


async def _count_results(conn, request_id) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM eve.orchestration_results WHERE request_id = %s",
                             (request_id,))
    return (await cur.fetchone())["n"]


@pytest.mark.parametrize("stale_outcome", [
    Outcome(status="success", summary="the stale worker's"),  # one statement
    Outcome(status="failed", error="the stale worker's", error_code="agent_error"),  # the transaction path
], ids=["success", "failure"])
async def test_a_stale_worker_cannot_complete_a_request_another_worker_holds(conn, stale_outcome):
    tenant = await make_tenant(conn, "stale")
    req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                              prompt="p")
    [stale] = await queue.claim(conn, "general", "w-stale")
    await queue.mark_processing(conn, stale.id, "w-stale")
    await conn.execute("UPDATE eve.orchestration_requests SET lease_expires_at = now() - interval '1 second' "
                       "WHERE id = %s", (req.id,))
    assert (await queue.reap(conn)).requeued == [req.id]
    [live] = await queue.claim(conn, "general", "w-live")
    await queue.mark_processing(conn, live.id, "w-live")

    with pytest.raises(ResultConflict):
        await queue.complete(conn, stale, "w-stale", stale_outcome)
    assert await _count_results(conn, req.id) == 0
    held = await queue.get_request(conn, req.id)
    assert held.status == "processing" and held.claimed_by == "w-live" and held.lease_expires_at is not None

    res = await queue.complete(conn, live, "w-live", Outcome(status="success", summary="the live worker's"))
    assert res.summary == "the live worker's" and await _count_results(conn, req.id) == 1
