"""Group completion (queue.complete_many / finish_many): complete()'s guarantees, many at once."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import queue
from eve.errors import ResultConflict, ValidationError
from eve.models import Outcome
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def tenant(conn) -> Tenant:
    return await make_tenant(conn, "many")


async def _enqueue(conn, tenant, **kw: Any) -> Any:
    kw.setdefault("worker_type", "general")
    kw.setdefault("prompt", "job")
    return await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, **kw)


async def _scalar(conn, sql: str, *args: Any) -> Any:
    row = await (await conn.execute(sql, args)).fetchone()
    return next(iter(row.values()))


async def test_a_batch_writes_what_complete_writes(conn, tenant):
    for _ in range(3):
        await _enqueue(conn, tenant)
    a, b, c = await queue.claim(conn, "general", "w1", limit=3)
    written = await queue.complete_many(conn, "w1", [
        (a, Outcome(status="success", output={"result": "A"}, summary="A", duration_ms=5, tokens_used=7,
                    cost_usd=0.0012)),
        (b, Outcome(status="failed", error="boom", error_code="agent_error")),
        (c, Outcome(status="cancelled", error="cancelled", error_code="cancelled")),
    ])
    assert set(written) == {a.id, b.id, c.id}
    ra = written[a.id]
    assert (ra.status, ra.output, ra.summary, ra.duration_ms, ra.tokens_used) == ("success", {"result": "A"}, "A", 5, 7)
    assert float(ra.cost_usd) == pytest.approx(0.0012)
    assert written[b.id].error_code == "agent_error" and written[c.id].status == "cancelled"
    for req, status, kind in ((a, "completed", "result"), (b, "failed", "error"), (c, "cancelled", "cancelled")):
        final = await queue.get_request(conn, req.id)
        assert final.status == status and final.finished_at is not None and final.lease_expires_at is None
        assert [e.kind for e in await queue.list_events(conn, req.id)] == ["claimed", kind]
        assert (await queue.get_result(conn, req.id)).status == written[req.id].status


async def test_only_requests_the_worker_still_holds_get_a_result(conn, tenant):
    for _ in range(4):
        await _enqueue(conn, tenant)
    mine = await queue.claim(conn, "general", "w1", limit=3)
    [theirs] = await queue.claim(conn, "general", "w2")
    await queue.complete(conn, mine[0], "w1", Outcome(status="success", summary="first"))
    written = await queue.complete_many(conn, "w1", [(r, Outcome(status="success", summary="second"))
                                                     for r in [*mine, theirs]])
    assert set(written) == {mine[1].id, mine[2].id}
    assert (await queue.get_result(conn, mine[0].id)).summary == "first"
    assert (await queue.get_request(conn, theirs.id)).status == "claimed"
    assert await queue.complete_many(conn, "w1", [(r, Outcome(status="success")) for r in mine]) == {}
    assert await _scalar(conn, "SELECT count(*) FROM eve.orchestration_results") == 3
    with pytest.raises(ResultConflict):
        await queue.complete(conn, mine[1], "w1", Outcome(status="failed", error="late"))


async def test_bad_batches_are_refused_and_write_nothing(conn, tenant):
    await _enqueue(conn, tenant)
    [r] = await queue.claim(conn, "general", "w1")
    with pytest.raises(ValidationError, match="same request twice"):
        await queue.complete_many(conn, "w1", [(r, Outcome(status="success")), (r, Outcome(status="success"))])
    with pytest.raises(ValidationError, match="unknown result status"):
        await queue.complete_many(conn, "w1", [(r, Outcome(status="meh"))])
    assert await queue.complete_many(conn, "w1", []) == {}
    assert await _scalar(conn, "SELECT count(*) FROM eve.orchestration_results") == 0


async def test_dependents_are_unblocked_by_every_blocker_finished_in_the_batch(conn, tenant):
    a = await _enqueue(conn, tenant, prompt="a")
    b = await _enqueue(conn, tenant, prompt="b")
    other = await _enqueue(conn, tenant, prompt="other", worker_type="data")
    both = await _enqueue(conn, tenant, prompt="both", worker_type="code-review", blocked_by=[a.id, b.id])
    partly = await _enqueue(conn, tenant, prompt="partly", worker_type="code-review",
                            blocked_by=[b.id, other.id, a.id])
    claimed = await queue.claim(conn, "general", "w1", limit=2)
    await queue.complete_many(conn, "w1", [(r, Outcome(status="success")) for r in claimed])
    assert (await queue.get_request(conn, both.id)).blocked_by == []
    assert (await queue.get_request(conn, partly.id)).blocked_by == [other.id]
    [runnable] = await queue.claim(conn, "code-review", "w3", limit=5)
    assert runnable.id == both.id


async def test_a_failure_in_the_batch_fails_its_dependents_only(conn, tenant):
    ok = await _enqueue(conn, tenant, prompt="ok")
    bad = await _enqueue(conn, tenant, prompt="bad")
    after_ok = await _enqueue(conn, tenant, prompt="after ok", worker_type="data", blocked_by=[ok.id])
    after_bad = await _enqueue(conn, tenant, prompt="after bad", worker_type="data", blocked_by=[bad.id])
    after_that = await _enqueue(conn, tenant, prompt="after that", worker_type="data", blocked_by=[after_bad.id])
    claimed = {r.id: r for r in await queue.claim(conn, "general", "w1", limit=2)}
    await queue.complete_many(conn, "w1", [
        (claimed[ok.id], Outcome(status="success")),
        (claimed[bad.id], Outcome(status="failed", error="boom", error_code="agent_error")),
    ])
    assert (await queue.get_request(conn, after_ok.id)).blocked_by == []
    for dep in (after_bad, after_that):
        assert (await queue.get_result(conn, dep.id)).error_code == "dependency_failed"
    assert (await queue.get_request(conn, after_ok.id)).status == "pending"


async def test_concurrent_batches_write_exactly_one_result_per_request(db_url, conn, tenant):
    """Six connections race overlapping batches (and single completes) over the same 60 requests."""
    await conn.execute("""INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt)
                          SELECT %s, %s, 'general', 'job' FROM generate_series(1, 60)""",
                       (tenant.org_id, tenant.user_id))
    claimed = await queue.claim(conn, "general", "w1", limit=60)
    assert len(claimed) == 60
    rng = random.Random(7)

    async def racer(i: int) -> list[Any]:
        order = claimed[:]
        rng.shuffle(order)
        won: list[Any] = []
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as c:
            for start in range(0, 60, 15):
                chunk = order[start:start + 15]
                if i == 0:  # one racer completes one at a time
                    for r in chunk:
                        try:
                            await queue.complete(c, r, "w1", Outcome(status="success", summary=f"racer {i}"))
                            won.append(r.id)
                        except ResultConflict:
                            pass
                else:
                    written = await queue.complete_many(c, "w1", [(r, Outcome(status="success", summary=f"racer {i}"))
                                                                  for r in chunk])
                    won.extend(written)
        return won

    results = await asyncio.wait_for(asyncio.gather(*(racer(i) for i in range(6))), 120)
    won = [rid for r in results for rid in r]
    assert sorted(won) == sorted(r.id for r in claimed)  # every request won exactly once
    assert await _scalar(conn, "SELECT count(*) FROM eve.orchestration_results") == 60
    assert await _scalar(conn, "SELECT count(*) FROM eve.request_events WHERE kind = 'result'") == 60
    assert await _scalar(conn, "SELECT count(*) FROM eve.orchestration_requests WHERE status = 'completed'") == 60
