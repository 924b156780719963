"""Human in the loop in SQL and eve.hitl: ask, park, answer, expire, cancel, replay, RLS.

Answers are given the way the API gives them: on a connection logged in with the API's
own role (member of eve_api only), inside a transaction acting for one user.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import hitl, queue
from eve.errors import Conflict, NotFound, ValidationError
from tests.integration.test_least_privilege import split  # noqa: F401  (fixture)
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def tenant(conn: psycopg.AsyncConnection[Any]) -> Tenant:
    return await make_tenant(conn, "acme")


@asynccontextmanager
async def as_api_user(dsn: str, user_id: Any) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction as eve_api acting for one user, on the API's login role (what as_user does)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        async with c.transaction():
            await c.execute("SET LOCAL ROLE eve_api")
            await c.execute("SELECT set_config('eve.user_id', %s, true)", (str(user_id),))
            yield c


async def _running(conn: Any, tenant: Tenant, worker: str = "w1") -> Any:
    req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id,
                              worker_type="general", prompt="deploy v2")
    [claimed] = await queue.claim(conn, "general", worker, limit=1)
    assert claimed.id == req.id
    await queue.mark_processing(conn, claimed.id, worker)
    return claimed


async def _ask(split: dict[str, Any], tenant: Tenant, request_id: Any, **kw: Any) -> dict[str, Any]:
    kw.setdefault("question", "Deploy v2 to production?")
    kw.setdefault("options", ["yes", "no"])
    async with as_api_user(split["api"], tenant.user_id) as api:
        return await hitl.ask(api, request_id=request_id, **kw)


async def _answer(split: dict[str, Any], who: Tenant, qid: Any, answer: str) -> dict[str, Any]:
    async with as_api_user(split["api"], who.user_id) as api:
        return await hitl.answer_question(api, qid, answer, user_id=who.user_id)


async def _row(conn: Any, sql: str, *args: Any) -> Any:
    return await (await conn.execute(sql, args)).fetchone()


async def _park(conn: Any, request_id: Any, worker: str = "w1") -> str | None:
    return (await _row(conn, "SELECT eve.request_park(%s, %s) AS s", request_id, worker))["s"]


async def _status(conn: Any, request_id: Any) -> tuple[str, int]:
    r = await _row(conn, "SELECT status, resumes FROM eve.orchestration_requests WHERE id = %s", request_id)
    return r["status"], r["resumes"]


async def _kinds(conn: Any, request_id: Any) -> list[str]:
    return [e.kind for e in await queue.list_events(conn, request_id)]


async def test_ask_records_question_and_wait_then_answer_wakes_the_parked_request(split, conn, tenant):
    req = await _running(conn, tenant)
    q = await _ask(split, tenant, req.id, timeout_s=7200)
    assert q["status"] == "pending" and q["options"] == ["yes", "no"] and q["request_id"] == req.id
    assert timedelta(hours=1, minutes=59) < q["expires_at"] - q["asked_at"] <= timedelta(hours=2, seconds=5)
    wait = await _row(conn, "SELECT * FROM eve.request_waits WHERE ref_id = %s", q["id"])
    assert (wait["kind"], wait["request_id"], wait["resolved_at"]) == ("question", req.id, None)
    r = await _row(conn, "SELECT wait_requested_at FROM eve.orchestration_requests WHERE id = %s", req.id)
    assert r["wait_requested_at"] is not None
    assert await _park(conn, req.id) == "waiting"
    assert await _status(conn, req.id) == ("waiting", 0)

    answered = await _answer(split, tenant, q["id"], " YES ")
    assert answered["status"] == "answered" and answered["response"] == {"answer": "yes", "via": "api"}
    assert answered["answered_by"] == tenant.user_id and answered["answered_by_name"] == tenant.email
    assert await _status(conn, req.id) == ("pending", 1)
    wait = await _row(conn, "SELECT * FROM eve.request_waits WHERE ref_id = %s", q["id"])
    assert wait["outcome"] == f'The human ({tenant.email}) answered "Deploy v2 to production?": yes'
    kinds = await _kinds(conn, req.id)
    assert kinds[-4:] == ["hitl_asked", "waiting", "hitl_answered", "woken"] or \
        kinds[-4:] == ["hitl_asked", "waiting", "woken", "hitl_answered"]
    asked = [e for e in await queue.list_events(conn, req.id) if e.kind == "hitl_asked"][0]
    assert asked.data["question_id"] == str(q["id"]) and asked.data["options"] == ["yes", "no"]


async def test_an_answer_before_the_agent_exits_sends_park_straight_back_to_pending(split, conn, tenant):
    req = await _running(conn, tenant)
    q = await _ask(split, tenant, req.id, options=[])
    await _answer(split, tenant, q["id"], "ship it after 5pm")  # free text: no options
    assert (await _status(conn, req.id))[0] == "processing"
    assert await _park(conn, req.id) == "pending"
    assert await _status(conn, req.id) == ("pending", 1)


async def test_a_bad_option_lists_the_options_and_changes_nothing(split, conn, tenant):
    req = await _running(conn, tenant)
    q = await _ask(split, tenant, req.id)
    with pytest.raises(hitl.OptionNotAllowed) as exc:
        await _answer(split, tenant, q["id"], "maybe")
    assert exc.value.options == ["yes", "no"] and exc.value.http_status == 400
    assert "yes, no" in exc.value.message
    assert (await hitl.get_question(conn, q["id"]))["status"] == "pending"


async def test_a_second_answer_is_refused_naming_who_answered_first(split, conn, tenant):
    other = await make_tenant(conn, "globex")
    await conn.execute("INSERT INTO eve.org_members (org_id, user_id, role) VALUES (%s, %s, 'member')",
                       (tenant.org_id, other.user_id))
    req = await _running(conn, tenant)
    q = await _ask(split, tenant, req.id)
    await _answer(split, tenant, q["id"], "no")
    with pytest.raises(hitl.AlreadyClosed) as exc:
        await _answer(split, other, q["id"], "yes")
    assert exc.value.http_status == 409
    assert f"already answered by {tenant.email}" in exc.value.message and exc.value.message.endswith(": no")
    assert (await hitl.get_question(conn, q["id"]))["response"]["answer"] == "no"


async def test_expiry_resolves_with_no_answer_by_and_later_answers_are_refused(split, conn, tenant):
    req = await _running(conn, tenant)
    q = await _ask(split, tenant, req.id, timeout_s=60)
    await _park(conn, req.id)
    assert await hitl.next_expiry(conn) == q["expires_at"]
    assert await hitl.expire_due(conn, now=q["expires_at"] - timedelta(seconds=1)) == []
    await conn.execute("UPDATE eve.hitl_requests SET expires_at = now() - interval '1 s' WHERE id = %s",
                       (q["id"],))
    with pytest.raises(hitl.AlreadyClosed, match="expired at"):  # its time is up even before the loop ran
        await _answer(split, tenant, q["id"], "yes")
    assert (await hitl.get_question(conn, q["id"]))["status"] == "pending"  # the loop marks it
    q = await hitl.get_question(conn, q["id"])
    [done] = await hitl.expire_due(conn)
    assert (done.question_id, done.request_id) == (q["id"], req.id)
    assert await hitl.expire_due(conn) == []  # once
    assert (await hitl.get_question(conn, q["id"]))["status"] == "expired"
    assert await _status(conn, req.id) == ("pending", 1)
    wait = await _row(conn, "SELECT outcome FROM eve.request_waits WHERE ref_id = %s", q["id"])
    assert wait["outcome"] == f'No answer by {hitl.fmt_time(q["expires_at"])} to "Deploy v2 to production?"'
    assert "hitl_expired" in await _kinds(conn, req.id)
    assert await hitl.next_expiry(conn) is None
    with pytest.raises(hitl.AlreadyClosed, match="expired at .* without an answer"):
        await _answer(split, tenant, q["id"], "yes")


async def test_cancelling_a_waiting_request_cancels_its_open_question(split, conn, tenant):
    req = await _running(conn, tenant)
    q = await _ask(split, tenant, req.id)
    await _park(conn, req.id)
    async with as_api_user(split["api"], tenant.user_id) as api:  # the API's cancel path
        await queue.request_cancel(api, req.id)
    assert (await _status(conn, req.id))[0] == "cancelled"
    closed = await hitl.get_question(conn, q["id"])
    assert closed["status"] == "cancelled" and closed["closed_at"] is not None
    wait = await _row(conn, "SELECT resolved_at FROM eve.request_waits WHERE ref_id = %s", q["id"])
    assert wait["resolved_at"] is not None
    assert "hitl_cancelled" in await _kinds(conn, req.id)
    with pytest.raises(hitl.AlreadyClosed, match="cancelled"):
        await _answer(split, tenant, q["id"], "yes")
    assert await hitl.next_expiry(conn) is None  # nothing left for the expiry loop


async def test_a_request_that_fails_while_asking_closes_its_question(split, conn, tenant):
    from eve.models import Outcome

    req = await _running(conn, tenant)
    q = await _ask(split, tenant, req.id)
    await queue.complete(conn, req, "w1", Outcome(status="failed", error="crashed", error_code="agent_error"))
    assert (await hitl.get_question(conn, q["id"]))["status"] == "cancelled"


async def test_replay_of_a_request_that_asked_starts_fresh(split, conn, tenant):
    req = await _running(conn, tenant)
    await _ask(split, tenant, req.id)
    await _park(conn, req.id)
    await queue.request_cancel(conn, req.id)
    new = await queue.replay(conn, req.id, user_id=tenant.user_id)
    assert await _status(conn, new.id) == ("pending", 0)
    rows, total = await hitl.list_questions(conn, request_id=new.id)
    assert (rows, total) == ([], 0)
    waits = await _row(conn, "SELECT count(*) AS n FROM eve.request_waits WHERE request_id = %s", new.id)
    sessions = await _row(conn, "SELECT count(*) AS n FROM eve.request_sessions WHERE request_id = %s", new.id)
    assert waits["n"] == 0 and sessions["n"] == 0


async def test_asking_checks_its_input_and_the_request_state(split, conn, tenant):
    req = await _running(conn, tenant)
    for kw, message in (({"question": "  "}, "must not be empty"),
                        ({"question": "x" * 2001}, "limit is 2000"),
                        ({"question": "ok?\x1b[2J"}, "control characters"),
                        ({"options": ["only"]}, "at least two options"),
                        ({"options": ["yes", "YES"]}, "different"),
                        ({"options": ["a\nb", "c"]}, "one line"),
                        ({"options": [str(i) for i in range(11)]}, "at most 10"),
                        ({"timeout_s": 0}, "between"),
                        ({"timeout_s": 40 * 86400}, "between")):
        with pytest.raises(ValidationError, match=message):
            await _ask(split, tenant, req.id, **kw)
    for _ in range(hitl.MAX_OPEN_PER_REQUEST):
        await _ask(split, tenant, req.id)
    with pytest.raises(Conflict, match="already has 5 open questions"):
        await _ask(split, tenant, req.id)
    finished = await _running(conn, tenant, worker="w2")
    await queue.request_cancel(conn, finished.id)  # flagged; now let it end
    from eve.models import Outcome
    await queue.complete(conn, finished, "w2", Outcome(status="cancelled", error="x", error_code="cancelled"))
    with pytest.raises(Conflict, match="not running"):
        await _ask(split, tenant, finished.id)


async def test_rls_on_hitl_requests_in_raw_sql_as_eve_api(split, conn, tenant):
    other = await make_tenant(conn, "globex")
    req = await _running(conn, tenant)
    q = await _ask(split, tenant, req.id)
    async with as_api_user(split["api"], other.user_id) as api:
        n = await _row(api, "SELECT count(*) AS n FROM eve.hitl_requests")
        assert n["n"] == 0
        cur = await api.execute("UPDATE eve.hitl_requests SET status = 'answered', response = '{\"answer\": \"yes\"}',"
                                " answered_at = now() WHERE id = %s", (q["id"],))
        assert cur.rowcount == 0
        with pytest.raises(NotFound):
            await hitl.answer_question(api, q["id"], "yes", user_id=other.user_id)
        with pytest.raises(NotFound):
            await hitl.get_question(api, q["id"])
        rows, total = await hitl.list_questions(api, statuses=["pending"])
        assert rows == [] and total == 0
    # a question forged into another org's request: the policy's WITH CHECK refuses it
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with as_api_user(split["api"], other.user_id) as api:
            await api.execute("INSERT INTO eve.hitl_requests (request_id, org_id, question) VALUES (%s, %s, 'x')",
                              (req.id, other.org_id))
    # ... nor into the org's own id with someone else's request
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with as_api_user(split["api"], other.user_id) as api:
            await api.execute("INSERT INTO eve.hitl_requests (request_id, org_id, question) VALUES (%s, %s, 'x')",
                              (req.id, tenant.org_id))
    async with as_api_user(split["api"], tenant.user_id) as api:
        n = await _row(api, "SELECT count(*) AS n FROM eve.hitl_requests")
        assert n["n"] == 1
        rows, total = await hitl.list_questions(api, statuses=["pending"])
        assert [r["id"] for r in rows] == [q["id"]] and total == 1
    assert (await hitl.get_question(conn, q["id"]))["status"] == "pending"


async def test_pending_list_is_oldest_first_and_filters(split, conn, tenant):
    a = await _running(conn, tenant, worker="w1")
    b = await _running(conn, tenant, worker="w2")
    qa = await _ask(split, tenant, a.id, question="first?")
    qb = await _ask(split, tenant, b.id, question="second?")
    await _answer(split, tenant, qb["id"], "yes")
    qc = await _ask(split, tenant, b.id, question="third?")
    async with as_api_user(split["api"], tenant.user_id) as api:
        rows, total = await hitl.list_questions(api, statuses=["pending"])
        assert [r["question"] for r in rows] == ["first?", "third?"] and total == 2
        rows, total = await hitl.list_questions(api)
        assert [r["id"] for r in rows] == [qc["id"], qb["id"], qa["id"]] and total == 3
        rows, _ = await hitl.list_questions(api, request_id=b.id, statuses=["answered"])
        assert [r["id"] for r in rows] == [qb["id"]]
        rows, total = await hitl.list_questions(api, limit=1)
        assert len(rows) == 1 and total == 3
    with pytest.raises(ValidationError, match="unknown question status 'open'"):
        hitl.parse_statuses("pending,open")


async def test_pending_in_my_org_uses_the_partial_index(conn, tenant):
    await conn.execute("SET enable_seqscan = off")
    plan = await (await conn.execute(
        "EXPLAIN SELECT id FROM eve.hitl_requests WHERE org_id = %s AND status = 'pending' ORDER BY asked_at",
        (tenant.org_id,))).fetchall()
    assert "idx_hitl_pending_org" in " ".join(r["QUERY PLAN"] for r in plan)


async def test_outcome_lines_are_the_briefs():
    at = datetime(2026, 12, 1, 21, 0, tzinfo=timezone.utc)
    assert hitl.answered_line("Ann", "Deploy?", "yes") == 'The human (Ann) answered "Deploy?": yes'
    assert hitl.expired_line(at, "Deploy?") == 'No answer by 2026-12-01 21:00:00 UTC to "Deploy?"'


async def test_the_scheduler_loop_expires_a_question_asked_while_it_slept(split, db_url, conn, tenant):
    """The loop sleeps an hour; asking wakes it (NOTIFY eve_schedules), it sleeps until the
    question's expiry, expires it and the parked request is woken."""
    import asyncio

    from eve.db import make_pool
    from eve.scheduler import Scheduler
    from tests.support.waiting import async_wait_for

    pool = make_pool(db_url, min_size=1, max_size=2)
    await pool.open(wait=True)
    sched = Scheduler(pool, db_url, max_sleep_s=3600, unlistened_sleep_s=3600)
    task = asyncio.create_task(sched.run())
    try:
        await async_wait_for(lambda: asyncio.sleep(0, sched.listening and sched.steps >= 2 and sched.asleep), 10,
                             "the loop asleep with LISTEN up")
        req = await _running(conn, tenant)
        q = await _ask(split, tenant, req.id, timeout_s=1)
        await _park(conn, req.id)

        async def expired() -> bool:
            return (await hitl.get_question(conn, q["id"]))["status"] == "expired"

        await async_wait_for(expired, 20, "the question expired by the loop")
        assert await _status(conn, req.id) == ("pending", 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()
