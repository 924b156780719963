"""The statements that touch one in-flight request are planned on the primary key.

The reaper's partial index (`idx_requests_lease`) once matched their `status IN
('claimed', 'processing')` filter too, and with statistics that showed few requests in
flight the planner scanned the whole index and filtered by id: cost that grows with
the number of running requests, paid on every finish, renew and requeue. EXPLAIN
shows which index each statement uses, with custom and generic plans. Also here: the
INSERT of a request keeps its generic plan, and a filter on a rare status reads the
index kept for those statuses.
"""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from eve import queue
from eve.queries import Q
from tests.support.tenants import make_tenant

pytestmark = pytest.mark.asyncio

PKEY = "orchestration_requests_pkey"

# name -> parameters (values only matter for their types)
ONE_ROW = {
    "finish_request": {"id": uuid4(), "worker_id": "w1", "final_status": "completed", "status": "success",
                       "output": None, "summary": None, "duration_ms": None, "tokens_used": None,
                       "cost_usd": None, "error": None, "error_code": None, "event_kind": "result",
                       "event_data": "{}", "success": True},
    "mark_processing": {"id": uuid4(), "worker_id": "w1"},
    "renew_leases": {"ids": [uuid4(), uuid4()], "worker_id": "w1", "lease_seconds": 60},
    "requeue_request": {"id": uuid4(), "worker_id": "w1", "delay_seconds": 0, "refund": 0, "error": None},
    "reap_requeue": {"id": uuid4(), "error": "lost"},
    "request_cancel_flag": {"id": uuid4()},
}


def _as_prepared(sql: str) -> tuple[str, list[str]]:
    names: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", sub, sql), names


async def _plan(conn: psycopg.AsyncConnection[Any], sql: str, params: dict[str, Any], generic: bool) -> str:
    """EXPLAIN of a prepared statement; generic=True forces the plan a reused statement gets."""
    text, names = _as_prepared(sql)
    await conn.execute("DEALLOCATE ALL")
    await conn.execute(f"SET plan_cache_mode = {'force_generic_plan' if generic else 'force_custom_plan'}")
    await conn.execute(f"PREPARE q AS {text}")
    args = ", ".join(psycopg.sql.Literal(params[n]).as_string(conn) for n in names)
    cur = await conn.execute(f"EXPLAIN EXECUTE q({args})" if names else "EXPLAIN EXECUTE q")
    return "\n".join(next(iter(r.values())) for r in await cur.fetchall())


@pytest.fixture
async def in_flight(conn):
    """A table that looks like a busy queue to the planner: history, pending, some in flight."""
    t = await make_tenant(conn, "plans")
    await conn.execute("""INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt, status,
                                                                 finished_at)
                          SELECT %s, %s, 'general', 'old', 'completed', now() FROM generate_series(1, 3000)""",
                       (t.org_id, t.user_id))
    await conn.execute("""INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt)
                          SELECT %s, %s, 'general', 'job' FROM generate_series(1, 200)""", (t.org_id, t.user_id))
    # statistics from before the claims (as after a bulk insert): nothing in flight, as far
    # as the planner knows, which makes a scan of the reaper's partial index look free
    await conn.execute("ANALYZE eve.orchestration_requests")
    await queue.claim(conn, "general", "w1", limit=20)
    return t


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("name", sorted(ONE_ROW))
async def test_one_row_statements_use_the_primary_key(conn, in_flight, name, generic):
    plan = await _plan(conn, getattr(Q, name), ONE_ROW[name], generic)
    # the first access to orchestration_requests in the plan is the one that finds the target row(s)
    access = re.search(r"Index (?:Only )?Scan using (\w+) on orchestration_requests|Bitmap Index Scan on (\w+)"
                       r"|(Seq Scan) on orchestration_requests", plan)
    assert access, plan
    assert PKEY in access.groups(), f"{name} is not planned on the primary key:\n{plan}"
    assert "idx_requests_lease" not in plan, plan


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_the_group_finish_finds_its_rows_by_primary_key(conn, in_flight, generic):
    items = [{"id": str(uuid4()), "worker_id": "w1", "final_status": "completed", "status": "success",
              "event_kind": "result", "event_data": {}, "success": True} for _ in range(10)]
    params = {"items": json.dumps(items), "n": len(items)}
    plan = await _plan(conn, Q.finish_many, params, generic)
    assert PKEY in plan, plan
    assert "idx_requests_lease" not in plan and "Seq Scan on orchestration_requests" not in plan, plan


async def test_the_reaper_still_uses_its_lease_index(conn, in_flight):
    await conn.execute("SET enable_seqscan = off")  # a tiny table: ask whether the index *can* serve it
    plan = await _plan(conn, Q.expired_leases, {"limit": 100}, generic=False)
    assert "idx_requests_lease" in plan, plan


@pytest.mark.parametrize("sql_name", ["queue_depth", "api_workers"])
async def test_counts_of_in_flight_requests_read_the_lease_index(conn, in_flight, sql_name):
    """With a million rows of history a scan for in-flight rows is what made GET /queue slow."""
    await conn.execute("SET enable_seqscan = off")  # a small table: ask whether the index *can* serve it
    plan = await _plan(conn, getattr(Q, sql_name), {}, generic=False)
    assert "idx_requests_lease" in plan, plan


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
async def test_the_claim_updates_its_rows_by_primary_key(conn, in_flight, generic):
    """The claim's batch size is part of its text (queue._claim_sql), so the generic plan
    PostgreSQL reuses knows the batch is small: no hash join over a scan of the table.
    With `LIMIT $n` the generic plan assumed a tenth of the pending rows and scanned."""
    await conn.execute("""INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt)
                          SELECT %s, %s, 'general', 'job' FROM generate_series(1, 20000)""",
                       (in_flight.org_id, in_flight.user_id))
    await conn.execute("ANALYZE eve.orchestration_requests")
    plan = await _plan(conn, queue._claim_sql(10), {"worker_type": "general", "worker_id": "w2",
                                                    "lease_seconds": 60}, generic)
    assert "idx_requests_fair" in plan, plan
    assert "Seq Scan on orchestration_requests" not in plan, plan
    assert re.search(r"Index Scan using orchestration_requests_pkey on orchestration_requests r\b", plan), plan


def _total_cost(plan: str) -> float:
    return float(re.search(r"cost=[\d.]+\.\.([\d.]+)", plan).group(1))  # type: ignore[union-attr]


async def test_the_insert_keeps_its_generic_plan(conn, in_flight):
    """PostgreSQL reuses a prepared statement's generic plan only when it costs no more
    than the custom plans it made first; otherwise it plans again on every call. With the
    blocker filter in the text, the generic plan was costed for ten blockers and the
    custom ones for none: under the POST benchmark the INSERT was re-planned on every
    call (0.3 ms each). Requests without blockers therefore use their own statement."""
    params = {"org_id": in_flight.org_id, "user_id": in_flight.user_id, "worker_type": "general",
              "prompt": "p", "context": "{}", "config": "{}", "priority": 0, "max_attempts": 3,
              "run_after": None, "blocked_by": [], "parent_id": None, "replay_of": None, "reply_to": None,
              "workspace": None}
    custom = _total_cost(await _plan(conn, Q.request_insert, params, generic=False))
    generic = _total_cost(await _plan(conn, Q.request_insert, params, generic=True))
    assert generic <= custom, (generic, custom)
    # the statement with the filter, given no blockers, shows the gap this test guards against
    custom = _total_cost(await _plan(conn, Q.request_insert_blocked, params, generic=False))
    generic = _total_cost(await _plan(conn, Q.request_insert_blocked, params, generic=True))
    assert generic > custom, (generic, custom)


@pytest.mark.parametrize("sql_name", ["api_requests_page", "api_requests_count"])
@pytest.mark.parametrize("status", ["cancelled", "waiting", "failed"])
async def test_a_rare_status_filter_reads_its_own_index(conn, in_flight, sql_name, status):
    """GET /requests?status=cancelled once walked the whole history newest-first, filtering:
    188 ms for a page over 1,000,000 requests. As the API runs it: as eve_api under RLS,
    never prepared (so a custom plan, with the statuses known)."""
    search = {"statuses": [status], "worker_type": None, "org_id": None, "since": None, "until": None,
              "q_like": None, "id_lo": None, "id_hi": None, "cursor_at": None, "cursor_id": None,
              "limit": 51, "cap": 10001}
    await conn.execute("BEGIN")
    try:
        await conn.execute("SELECT set_config('role', 'eve_api', true), set_config('eve.user_id', %s, true)",
                           (str(in_flight.user_id),))
        plan = await _plan(conn, getattr(Q, sql_name), search, generic=False)
    finally:
        await conn.execute("ROLLBACK")
    assert "idx_requests_rare_status" in plan, plan
