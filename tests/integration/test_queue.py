"""Queue operations against a real PostgreSQL (fresh database per test)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import queue
from eve.errors import Conflict, InvalidWorkerType, NotFound, PayloadTooLarge, ResultConflict, ValidationError
from eve.models import Outcome
from eve.queries import Q
from eve.settings import QueueSettings
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def tenant(conn: psycopg.AsyncConnection[Any]) -> Tenant:
    return await make_tenant(conn, "acme")


async def _enqueue(conn: psycopg.AsyncConnection[Any], tenant: Tenant, **kw: Any) -> Any:
    kw.setdefault("worker_type", "general")
    kw.setdefault("prompt", "do the thing")
    return await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, **kw)


async def _count(conn: psycopg.AsyncConnection[Any], sql: str, *args: Any) -> int:
    cur = await conn.execute(sql, args)
    row = await cur.fetchone()
    assert row is not None
    return int(next(iter(row.values())))


# -- enqueue and validation -------------------------------------------------------


async def test_enqueue_sets_defaults_from_worker_type(conn, tenant):
    req = await _enqueue(conn, tenant, context={"repo": "x"}, config={"variant": "zai"})
    assert req.status == "pending"
    assert req.context == {"repo": "x"}
    assert req.config == {"variant": "zai"}
    assert req.max_attempts == 3
    assert req.attempts == 0
    assert (await queue.get_request(conn, req.id)).id == req.id


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"worker_type": "nonexistent-worker"}, InvalidWorkerType, "Invalid worker type: nonexistent-worker"),
        ({"prompt": ""}, ValidationError, "prompt must not be empty"),
        ({"prompt": "   \n"}, ValidationError, "prompt must not be empty"),
        ({"prompt": "x" * 1_000_001}, PayloadTooLarge, "1 MB"),
        ({"context": ["not", "an", "object"]}, ValidationError, "context must be a JSON object"),
        ({"context": "str"}, ValidationError, "context must be a JSON object"),
        ({"config": {"variant": "../../bin/sh"}}, ValidationError, "not a valid variant name"),
        ({"config": {"timeoutMs": 5}}, ValidationError, "unknown config key"),
        ({"config": {"timeout_ms": "soon"}}, ValidationError, "config.timeout_ms must be int"),
        ({"blocked_by": ["not-a-uuid"]}, ValidationError, "must be a UUID"),
        ({"blocked_by": [str(uuid4())]}, ValidationError, "do not exist"),
        ({"priority": 10**6}, ValidationError, "priority"),
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(conn, tenant, kwargs, error, text):
    with pytest.raises(error) as info:
        await _enqueue(conn, tenant, **kwargs)
    assert text in info.value.message
    assert await _count(conn, "SELECT count(*) FROM eve.orchestration_requests") == 0


async def test_invalid_worker_type_message_matches_seed_smoke_test(conn, tenant):
    with pytest.raises(InvalidWorkerType) as info:
        await _enqueue(conn, tenant, worker_type="nope")
    assert "Invalid worker type" in str(info.value)
    assert info.value.to_dict() == {"error": "invalid_worker_type", "message": "Invalid worker type: nope"}


async def test_malformed_uuid_lookups_are_validation_errors(conn):
    with pytest.raises(ValidationError, match="must be a UUID"):
        await queue.get_request(conn, "1234")
    with pytest.raises(NotFound):
        await queue.get_request(conn, uuid4())
    with pytest.raises(NotFound):
        await queue.get_result(conn, uuid4())


# -- claim -----------------------------------------------------------------------


async def test_claim_respects_type_priority_and_run_after(conn, tenant):
    low = await _enqueue(conn, tenant, prompt="low")
    high = await _enqueue(conn, tenant, prompt="high", priority=5)
    later = await _enqueue(conn, tenant, prompt="later", priority=9,
                           run_after=datetime.now(timezone.utc) + timedelta(hours=1))
    other = await _enqueue(conn, tenant, prompt="review", worker_type="code-review")
    got = await queue.claim(conn, "general", "w1", limit=10)
    assert [r.id for r in got] == [high.id, low.id]
    assert all(r.status == "claimed" and r.claimed_by == "w1" and r.attempts == 1 for r in got)
    assert all(r.lease_expires_at is not None for r in got)
    assert later.id not in {r.id for r in got} and other.id not in {r.id for r in got}
    events = await queue.list_events(conn, high.id)
    assert [(e.kind, e.data["worker_id"]) for e in events] == [("claimed", "w1")]


async def test_seed_claim_function_still_works(conn, tenant):
    req = await _enqueue(conn, tenant)
    got = await queue.claim_next_via_function(conn, "general", "seed-worker")
    assert got is not None and got.id == req.id and got.status == "claimed" and got.claimed_by == "seed-worker"
    assert await queue.claim_next_via_function(conn, "general", "seed-worker") is None
    # and the raw SQL form from the seed (FROM, not (f()).*, which would call it once per column)
    req2 = await _enqueue(conn, tenant)
    cur = await conn.execute("SELECT * FROM eve.claim_next_request('general', 'raw')")
    row = await cur.fetchone()
    assert row["id"] == req2.id and row["claimed_by"] == "raw"


async def test_blocked_by_waits_for_blockers(conn, tenant):
    first = await _enqueue(conn, tenant, prompt="first")
    second = await _enqueue(conn, tenant, prompt="second", blocked_by=[first.id])
    assert second.blocked_by == [first.id]
    [claimed] = await queue.claim(conn, "general", "w1", limit=10)
    assert claimed.id == first.id
    await queue.complete(conn, claimed, "w1", Outcome(status="success", summary="ok"))
    [claimed2] = await queue.claim(conn, "general", "w1", limit=10)
    assert claimed2.id == second.id
    # an already-completed blocker does not block at all
    third = await _enqueue(conn, tenant, prompt="third", blocked_by=[first.id])
    assert third.blocked_by == []


async def test_failed_blocker_fails_dependents(conn, tenant):
    first = await _enqueue(conn, tenant, prompt="first", max_attempts=1)
    second = await _enqueue(conn, tenant, prompt="second", blocked_by=[first.id])
    third = await _enqueue(conn, tenant, prompt="third", blocked_by=[second.id])
    [c] = await queue.claim(conn, "general", "w1")
    await queue.fail(conn, c, "w1", Outcome(status="failed", error="boom", error_code="agent_error"))
    for dep in (second, third):
        res = await queue.get_result(conn, dep.id)
        assert res.status == "failed" and res.error_code == "dependency_failed"
        assert (await queue.get_request(conn, dep.id)).status == "failed"


async def test_concurrent_claimers_claim_each_request_exactly_once(db_url, tenant, conn):
    """8 claimers over 2,000 requests: every request claimed once, none twice."""
    await conn.execute(
        """INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt)
           SELECT %s, %s, 'general', 'job ' || g FROM generate_series(1, 2000) g""",
        (tenant.org_id, tenant.user_id),
    )
    claimed: dict[str, list[Any]] = {}

    async def claimer(name: str) -> None:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as c:
            mine: list[Any] = []
            while True:
                got = await queue.claim(c, "general", name, limit=7)
                if not got:
                    break
                mine.extend(r.id for r in got)
            claimed[name] = mine

    await asyncio.wait_for(asyncio.gather(*(claimer(f"w{i}") for i in range(8))), timeout=120)
    all_ids = [i for ids in claimed.values() for i in ids]
    assert len(all_ids) == 2000
    assert len(set(all_ids)) == 2000
    assert sum(1 for ids in claimed.values() if ids) >= 2, "claims should spread over several claimers"
    assert await _count(conn, "SELECT count(*) FROM eve.orchestration_requests WHERE status = 'claimed'") == 2000
    assert await _count(conn, "SELECT count(*) FROM eve.request_events WHERE kind = 'claimed'") == 2000


# -- leases, complete, fail ------------------------------------------------------------


async def test_processing_and_lease_renewal_reports_cancel(conn, tenant):
    req = await _enqueue(conn, tenant)
    [c] = await queue.claim(conn, "general", "w1")
    p = await queue.mark_processing(conn, c.id, "w1")
    assert p.status == "processing" and p.started_at is not None
    assert await queue.renew_leases(conn, "w1", [c.id]) == {c.id: False}
    assert await queue.renew_leases(conn, "someone-else", [c.id]) == {}
    await queue.request_cancel(conn, req.id)
    assert await queue.renew_leases(conn, "w1", [c.id]) == {c.id: True}
    with pytest.raises(ResultConflict):
        await queue.mark_processing(conn, c.id, "someone-else")


async def test_complete_writes_one_result_and_rejects_a_second(conn, tenant):
    req = await _enqueue(conn, tenant)
    [c] = await queue.claim(conn, "general", "w1")
    res = await queue.complete(conn, c, "w1", Outcome(
        status="success", output={"result": "hi"}, summary="hi", duration_ms=12, tokens_used=30, cost_usd=0.0012))
    assert res.status == "success" and res.summary == "hi" and float(res.cost_usd) == pytest.approx(0.0012)
    with pytest.raises(ResultConflict):
        await queue.complete(conn, c, "w1", Outcome(status="failed", error="late"))
    assert await _count(conn, "SELECT count(*) FROM eve.orchestration_results WHERE request_id = %s", req.id) == 1
    final = await queue.get_request(conn, req.id)
    assert final.status == "completed" and final.finished_at is not None and final.lease_expires_at is None
    kinds = [e.kind for e in await queue.list_events(conn, req.id)]
    assert kinds == ["claimed", "result"]


async def test_concurrent_completions_write_exactly_one_result(db_url, tenant, conn):
    req = await _enqueue(conn, tenant)
    [c] = await queue.claim(conn, "general", "w1")

    async def try_complete(i: int) -> bool:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as cc:
            try:
                await queue.complete(cc, c, "w1", Outcome(status="success", summary=f"#{i}"))
                return True
            except ResultConflict:
                return False

    wins = await asyncio.gather(*(try_complete(i) for i in range(6)))
    assert sum(wins) == 1
    assert await _count(conn, "SELECT count(*) FROM eve.orchestration_results WHERE request_id = %s", req.id) == 1


async def test_retryable_failure_backs_off_then_fails_for_good(conn, tenant):
    settings = QueueSettings(retry_base_seconds=0.0)
    req = await _enqueue(conn, tenant, max_attempts=2)
    [c] = await queue.claim(conn, "general", "w1", settings=settings)
    out = Outcome(status="failed", error="provider 529", error_code="api_error", retryable=True)
    assert await queue.fail(conn, c, "w1", out, settings=settings) is None
    again = await queue.get_request(conn, req.id)
    assert again.status == "pending" and again.claimed_by is None and again.attempts == 1
    [c2] = await queue.claim(conn, "general", "w2", settings=settings)
    assert c2.attempts == 2
    res = await queue.fail(conn, c2, "w2", out, settings=settings)
    assert res is not None and res.status == "failed" and res.error_code == "api_error"
    kinds = [e.kind for e in await queue.list_events(conn, req.id)]
    assert kinds == ["claimed", "requeued", "claimed", "error"]


async def test_backoff_is_exponential_and_capped():
    s = QueueSettings(retry_base_seconds=5, retry_max_seconds=60)
    assert [queue.backoff_seconds(a, s) for a in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]


async def test_backoff_delays_the_next_claim(conn, tenant):
    settings = QueueSettings(retry_base_seconds=3600)
    await _enqueue(conn, tenant)
    [c] = await queue.claim(conn, "general", "w1", settings=settings)
    await queue.fail(conn, c, "w1", Outcome(status="failed", error="x", retryable=True), settings=settings)
    assert await queue.claim(conn, "general", "w1", settings=settings) == []


async def test_non_retryable_failure_is_final(conn, tenant):
    req = await _enqueue(conn, tenant)
    [c] = await queue.claim(conn, "general", "w1")
    res = await queue.fail(conn, c, "w1", Outcome(status="timeout", error="took too long", error_code="timeout"))
    assert res is not None and res.status == "timeout"
    assert (await queue.get_request(conn, req.id)).status == "failed"


async def test_graceful_requeue_does_not_count_the_attempt(conn, tenant):
    req = await _enqueue(conn, tenant)
    [c] = await queue.claim(conn, "general", "w1")
    await queue.requeue(conn, c, "w1", "worker_shutdown")
    again = await queue.get_request(conn, req.id)
    assert again.status == "pending" and again.attempts == 0
    [c2] = await queue.claim(conn, "general", "w2")
    assert c2.id == req.id and c2.attempts == 1


# -- reaper --------------------------------------------------------------------------


async def _expire(conn: psycopg.AsyncConnection[Any], request_id: Any) -> None:
    await conn.execute(
        "UPDATE eve.orchestration_requests SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
        (request_id,),
    )


async def test_expired_lease_is_requeued_and_claimed_again(conn, tenant):
    req = await _enqueue(conn, tenant)
    [c] = await queue.claim(conn, "general", "dead-worker")
    await _expire(conn, c.id)
    report = await queue.reap(conn)
    assert report.ran and report.requeued == [req.id] and report.failed == []
    [c2] = await queue.claim(conn, "general", "live-worker")
    assert c2.id == req.id and c2.attempts == 2
    await queue.complete(conn, c2, "live-worker", Outcome(status="success"))
    # the dead worker coming back cannot write a second result
    with pytest.raises(ResultConflict):
        await queue.complete(conn, c, "dead-worker", Outcome(status="success"))
    assert await _count(conn, "SELECT count(*) FROM eve.orchestration_results WHERE request_id = %s", req.id) == 1


async def test_expired_lease_after_max_attempts_fails_worker_lost(conn, tenant):
    req = await _enqueue(conn, tenant, max_attempts=1)
    [c] = await queue.claim(conn, "general", "dead-worker")
    await _expire(conn, c.id)
    report = await queue.reap(conn)
    assert report.failed == [req.id]
    res = await queue.get_result(conn, req.id)
    assert res.status == "failed" and res.error_code == "worker_lost"
    assert (await queue.get_request(conn, req.id)).status == "failed"


async def test_live_leases_are_left_alone(conn, tenant):
    await _enqueue(conn, tenant)
    await queue.claim(conn, "general", "w1")
    report = await queue.reap(conn)
    assert report.ran and report.requeued == [] and report.failed == []


async def test_only_one_reaper_runs_at_a_time(db_url, conn, tenant):
    async with await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as holder:
        await holder.execute("SELECT pg_advisory_xact_lock(%s)", (queue.REAPER_LOCK_KEY,))
        report = await queue.reap(conn)
        assert report.ran is False
        await holder.rollback()
    assert (await queue.reap(conn)).ran is True


async def test_restarted_worker_requeues_its_claims_at_once(conn, tenant):
    """A worker starting under its old id takes back nothing: its claims run again without waiting for the lease."""
    held = await _enqueue(conn, tenant)
    other = await _enqueue(conn, tenant)
    last = await _enqueue(conn, tenant, max_attempts=1)
    assert {r.id for r in await queue.claim(conn, "general", "general-1", limit=2)} == {held.id, other.id}
    await queue.claim(conn, "general", "general-2", limit=1)  # `last`, held by another worker
    await conn.execute("UPDATE eve.orchestration_requests SET claimed_by = 'general-1' WHERE id = %s", (last.id,))
    await conn.execute("UPDATE eve.orchestration_requests SET claimed_by = 'general-2' WHERE id = %s", (other.id,))
    report = await queue.release_claims(conn, "general-1")
    assert report.requeued == [held.id] and report.failed == [last.id]
    again = await queue.get_request(conn, held.id)
    assert again.status == "pending" and again.claimed_by is None and again.lease_expires_at is None
    assert (await queue.get_request(conn, other.id)).status == "claimed"  # another worker's claim is untouched
    assert (await queue.get_result(conn, last.id)).error_code == "worker_lost"
    cur = await conn.execute("SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'requeued'",
                             (held.id,))
    assert [r["data"]["reason"] for r in await cur.fetchall()] == ["worker_restarted"]
    assert [r.id for r in await queue.claim(conn, "general", "general-1", limit=5)] == [held.id]


# -- cancel, replay ----------------------------------------------------------------------


async def test_cancel_pending_finishes_it_at_once(conn, tenant):
    req = await _enqueue(conn, tenant)
    out = await queue.request_cancel(conn, req.id)
    assert out.status == "cancelled"
    assert (await queue.get_result(conn, req.id)).status == "cancelled"
    assert await queue.claim(conn, "general", "w1") == []
    with pytest.raises(Conflict):
        await queue.request_cancel(conn, req.id)


async def test_cancel_running_sets_the_flag_and_notifies(db_url, conn, tenant):
    req = await _enqueue(conn, tenant)
    await queue.claim(conn, "general", "w1")
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as listener:
        await listener.execute("LISTEN eve_cancel")
        out = await asyncio.wait_for(queue.request_cancel(conn, req.id), 10)
        assert out.status == "claimed" and out.cancel_requested_at is not None
        notes = [n async for n in listener.notifies(timeout=5, stop_after=1)]
        assert [n.payload for n in notes] == [str(req.id)]


async def test_replay_copies_the_request(conn, tenant):
    req = await _enqueue(conn, tenant, prompt="again", context={"a": 1}, config={"model": "m"}, priority=3)
    [c] = await queue.claim(conn, "general", "w1")
    await queue.complete(conn, c, "w1", Outcome(status="failed", error="x"))
    new = await queue.replay(conn, req.id, user_id=tenant.user_id)
    assert new.id != req.id and new.replay_of == req.id and new.status == "pending"
    assert (new.prompt, new.context, new.config, new.priority) == ("again", {"a": 1}, {"model": "m"}, 3)
    assert "replayed" in [e.kind for e in await queue.list_events(conn, req.id)]


# -- depth, events, notify -------------------------------------------------------------------


async def test_queue_depth_counts_per_type(conn, tenant):
    for _ in range(3):
        await _enqueue(conn, tenant)
    await _enqueue(conn, tenant, worker_type="data")
    [c] = await queue.claim(conn, "general", "w1")
    await queue.complete(conn, c, "w1", Outcome(status="success"))
    await queue.claim(conn, "general", "w1")
    depth = {d.worker_type: d for d in await queue.queue_depth(conn)}
    assert set(depth) == {"general", "code-review", "playwright", "data"}
    g = depth["general"]
    assert (g.pending, g.running, g.completed_last_hour, g.failed_last_hour) == (1, 1, 1, 0)
    assert g.oldest_pending_at is not None
    assert depth["data"].pending == 1 and depth["code-review"].pending == 0
    assert depth["code-review"].oldest_pending_at is None


async def test_events_append_and_list_after(conn, tenant):
    req = await _enqueue(conn, tenant)
    ids = await queue.append_events(conn, req.id, req.org_id, [
        ("tool_call", {"name": "Bash", "summary": "echo hi"}),
        ("text", {"text": "hello"}),
        ("stderr", {"line": "warn"}),
    ])
    assert len(ids) == 3 and ids == sorted(ids)
    events = await queue.list_events(conn, req.id, after=ids[0])
    assert [e.kind for e in events] == ["text", "stderr"]
    assert events[0].data == {"text": "hello"}


async def test_a_batch_of_events_keeps_its_order_and_its_times(conn, tenant):
    """Ids follow the batch's order; an event's own time is kept (the worker's log lines
    carry when they happened), and one without gets the insert's."""
    from datetime import datetime, timezone

    req = await _enqueue(conn, tenant)
    then = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=timezone.utc)
    batch = [(f"k{i}", {"i": i, "text": "quote \" comma , brace } nul-free"}) for i in range(50)]
    batch[7] = ("stamped", {"i": 7}, then)
    ids = await queue.append_events(conn, req.id, req.org_id, batch)
    assert len(ids) == 50 and ids == sorted(ids)
    events = await queue.list_events(conn, req.id)
    assert [e.data["i"] for e in events] == list(range(50))
    assert events[7].kind == "stamped" and events[7].at == then
    assert events[0].data["text"] == 'quote " comma , brace } nul-free' and events[0].at > then


async def test_insert_notifies_workers_with_the_worker_type(db_url, conn, tenant):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as listener:
        await listener.execute("LISTEN eve_requests")
        await listener.execute("LISTEN eve_events")
        # eve_events is sent only while an SSE hub has announced subscribers (migration 0003)
        await conn.execute(Q.api_event_listener_announce, {"id": "test", "ttl_seconds": 60})
        req = await _enqueue(conn, tenant, worker_type="code-review")
        [event_id] = await queue.append_events(conn, req.id, req.org_id, [("text", {"text": "x"})])
        got = [(n.channel, n.payload) async for n in listener.notifies(timeout=5, stop_after=2)]
    assert got[0] == ("eve_requests", "code-review")
    assert got[1][0] == "eve_events" and json.loads(got[1][1]) == {"ids": [event_id]}


async def test_prune_deletes_old_finished_requests(conn, tenant):
    req = await _enqueue(conn, tenant)
    keep = await _enqueue(conn, tenant)
    [c] = await queue.claim(conn, "general", "w1")
    await queue.complete(conn, c, "w1", Outcome(status="success"))
    await conn.execute("UPDATE eve.orchestration_requests SET finished_at = now() - interval '40 days' WHERE id = %s",
                       (req.id,))
    assert await queue.prune(conn, older_than_seconds=30 * 86400) == 1
    with pytest.raises(NotFound):
        await queue.get_request(conn, req.id)
    assert (await queue.get_request(conn, keep.id)).status == "pending"


@pytest.mark.parametrize("limit", [0, -1, 1001, True, "10"])
async def test_a_claim_limit_out_of_range_is_refused_and_claims_nothing(conn, limit):
    """The batch size goes into the claim's text as a number (queue._claim_sql): anything
    but an int from 1 to MAX_CLAIM is refused before a statement is sent."""
    t = await make_tenant(conn, "limits")
    await queue.enqueue(conn, org_id=t.org_id, user_id=t.user_id, worker_type="general", prompt="x")
    with pytest.raises(ValidationError, match="claim limit"):
        await queue.claim(conn, "general", "w", limit=limit)
    assert len(await queue.claim(conn, "general", "w", limit=queue.MAX_CLAIM)) == 1
