"""Fair claim (0011): round-robin across orgs within a worker type and priority, per-org
running caps, priority still first — against the real claim statement and function."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from eve import queue
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.asyncio


async def _bulk(conn: psycopg.AsyncConnection[Any], t: Tenant, n: int, priority: int = 0, wt: str = "general") -> None:
    await conn.execute("""INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt, priority)
                          SELECT %s, %s, %s, 'p' || g, %s FROM generate_series(1, %s) g""",
                       (t.org_id, t.user_id, wt, priority, n))


async def _claim_orgs(conn, n: int, batch: int = 1, wt: str = "general") -> list[Any]:
    out: list[Any] = []
    while len(out) < n:
        got = await queue.claim(conn, wt, "w", limit=batch)
        if not got:
            break
        out += [r.org_id for r in got]
    return out


async def test_a_late_org_is_interleaved_with_a_big_backlog(conn):
    a, b = await make_tenant(conn, "big"), await make_tenant(conn, "late")
    await _bulk(conn, a, 300)
    first = await _claim_orgs(conn, 20)
    assert set(first) == {a.org_id}
    for i in range(10):
        await queue.enqueue(conn, org_id=b.org_id, user_id=b.user_id, worker_type="general", prompt=f"b{i}")
    nxt = await _claim_orgs(conn, 20)
    # strictly alternating: every second claim is the late org's until it runs out
    assert nxt.count(b.org_id) == 10, nxt
    assert all(nxt[i] != nxt[i + 1] for i in range(19)), nxt


async def test_batches_alternate_and_the_old_fifo_holds_within_one_org(conn):
    a, b = await make_tenant(conn, "one"), await make_tenant(conn, "two")
    await _bulk(conn, a, 10)
    await _bulk(conn, b, 10)
    got = await queue.claim(conn, "general", "w", limit=6)
    assert [r.org_id for r in got].count(a.org_id) == 3
    prompts_a = [r.prompt for r in got if r.org_id == a.org_id]
    assert prompts_a == ["p1", "p2", "p3"]  # within an org: submission order


async def test_priority_wins_over_round_robin(conn):
    a, b = await make_tenant(conn, "low"), await make_tenant(conn, "high")
    await _bulk(conn, a, 50)
    await queue.enqueue(conn, org_id=b.org_id, user_id=b.user_id, worker_type="general", prompt="urgent", priority=5)
    [first] = await queue.claim(conn, "general", "w", limit=1)
    assert first.prompt == "urgent"


async def test_running_cap_skips_the_org_and_a_batch_never_exceeds_it(conn):
    a, b = await make_tenant(conn, "capped"), await make_tenant(conn, "free")
    await conn.execute("INSERT INTO eve.org_limits (org_id, max_running_by_type, max_running) VALUES (%s, %s, 99)",
                       (a.org_id, '{"general": 2}'))
    await _bulk(conn, a, 20)
    got = await queue.claim(conn, "general", "w", limit=10)
    assert len(got) == 2 and {r.org_id for r in got} == {a.org_id}
    assert await queue.claim(conn, "general", "w", limit=10) == []  # at its cap: nothing
    await _bulk(conn, b, 5)
    got = await queue.claim(conn, "general", "w", limit=10)
    assert {r.org_id for r in got} == {b.org_id} and len(got) == 5
    # the seed's function obeys the cap too
    assert await queue.claim_next_via_function(conn, "general", "w") is None
    # another worker type is not capped by general's override (max_running 99 applies)
    await _bulk(conn, a, 3, wt="data")
    assert len(await queue.claim(conn, "data", "w", limit=10)) == 3


async def test_the_seed_function_claims_round_robin(conn):
    a, b = await make_tenant(conn, "fa"), await make_tenant(conn, "fb")
    await _bulk(conn, a, 10)
    await _bulk(conn, b, 2)
    orgs = [(await queue.claim_next_via_function(conn, "general", "w")).org_id for _ in range(4)]
    assert orgs.count(b.org_id) == 2 and orgs[:2] != [a.org_id, a.org_id]


@pytest.mark.parametrize("generic", [False, True])
async def test_the_claim_reads_the_fair_index_in_order_without_sorting_the_backlog(conn, generic):
    """With a backlog, the claim walks idx_requests_fair (no sort of every pending row), both plans."""
    from tests.integration.test_query_plans import _plan
    from eve.queries import Q

    a = await make_tenant(conn, "plan")
    await _bulk(conn, a, 5000)
    await conn.execute("ANALYZE eve.orchestration_requests")
    plan = await _plan(conn, Q.claim_batch, {"worker_type": "general", "worker_id": "w", "limit": 10,
                                             "lease_seconds": 60}, generic=generic)
    scan = plan[:plan.index("idx_requests_fair")]
    assert "idx_requests_fair" in plan, plan
    # the LockRows/Limit sit directly over the index scan: no Sort node between them
    assert "Sort" not in scan.split("candidates")[-1], plan


async def test_concurrent_claims_never_take_an_org_past_its_cap(conn, db_url):
    """Two workers claim at once: the second waits for the first's commit and sees its claim."""
    import asyncio

    from psycopg.rows import dict_row

    from tests.support.waiting import async_wait_for

    a, b = await make_tenant(conn, "race-a"), await make_tenant(conn, "race-b")
    await conn.execute("INSERT INTO eve.org_limits (org_id, max_running) VALUES (%s, 1)", (a.org_id,))
    await _bulk(conn, a, 5)
    first = await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row)
    second = await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row)
    try:
        got1 = await queue.claim(first, "general", "w1", limit=5)  # open transaction: not committed yet
        assert [r.org_id for r in got1] == [a.org_id]
        await _bulk(conn, b, 2)
        task = asyncio.create_task(queue.claim(second, "general", "w2", limit=5))

        async def second_waits() -> bool:
            cur = await conn.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            return (await cur.fetchone())["n"] == 1
        await async_wait_for(second_waits, 10, "the second claim to wait for the first")
        await first.commit()
        got2 = await asyncio.wait_for(task, 10)
        assert sorted(r.prompt for r in got2) == ["p1", "p2"] and {r.org_id for r in got2} == {b.org_id}
    finally:
        await first.close()
        await second.close()
