"""A mention in a thread eve owns continues it (migration 0013): the Slack side, against the
real API (HTTP mode), the real daemon and the fake Slack Web API; the worker is played by
the real queue functions. The session resume itself is tests/e2e/test_slack_continue_e2e.py."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from eve import queue
from eve.db import as_user, make_pool
from eve.models import Outcome
from tests.support.fake_slack import app_mention, slash_command
from tests.support.slackstack import SIGNING_SECRET, SLACK_USER, TEAM, make_slack_stack
from tests.support.tenants import make_tenant
from tests.support.waiting import async_wait_for, wait_for


@pytest.fixture
async def stack(conn, db_url, tmp_path):
    s = await make_slack_stack(conn, db_url, tmp_path)
    try:
        s.start_daemon()
        yield s
    finally:
        s.stop()


async def _requests(conn: Any) -> list[dict[str, Any]]:
    return await (await conn.execute("SELECT id, prompt, worker_type, reply_to, user_id FROM "
                                     "eve.orchestration_requests ORDER BY created_at")).fetchall()


async def _finished_thread(stack, conn) -> tuple[Any, str]:
    """`/eve say hi`, run and finished; returns (request, thread root ts) once the result is posted."""
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="say hi", trigger_id="t-1")
    assert r.status_code == 200, r.text
    [req] = await queue.claim(conn, "general", "w-test")
    await queue.complete(conn, req, "w-test", Outcome(status="success", summary="said hi", output={"text": "hi"}))
    wait_for(lambda: [p for p in stack.fake.accepted("chat.postMessage") if p["text"].startswith("✅")], 30,
             f"the result\n{stack.daemon_output()}")
    root = next(p for p in stack.fake.accepted("chat.postMessage") if p["text"].startswith("queued"))
    return req, root["_ts"]


async def test_mention_in_the_thread_creates_one_continuation_into_the_same_thread(stack, conn):
    first, root = await _finished_thread(stack, conn)
    kw = dict(team=TEAM, user=SLACK_USER, text="<@UBOT> now say bye", event_id="Ev001", thread_ts=root)
    assert app_mention(stack.api.url, SIGNING_SECRET, **kw).status_code == 200

    async def two() -> bool:
        return len(await _requests(conn)) == 2
    await async_wait_for(two, 30, "the continuation request")
    # Slack's retry of the same event (same event_id): nothing more
    assert app_mention(stack.api.url, SIGNING_SECRET, **kw).status_code == 200
    wait_for(lambda: "slack event Ev001 already handled; ignored" in stack.api.output(), 30,
             f"the redelivery to be handled\n{stack.api.output()}")
    assert len(await _requests(conn)) == 2
    second = (await _requests(conn))[1]
    assert second["prompt"] == "now say bye" and second["user_id"] == stack.tenant.user_id
    assert second["reply_to"]["thread_ts"] == root and second["reply_to"]["channel"] == "C0CHAN"
    cont = await (await conn.execute("SELECT continues FROM eve.request_continuations WHERE request_id = %s",
                                     (second["id"],))).fetchone()
    assert cont["continues"] == first.id
    assert [e.data for e in await queue.list_events(conn, first.id) if e.kind == "continued"] == [
        {"new_request_id": str(second["id"])}]

    # its result goes into the same thread, with no second root
    [req2] = await queue.claim(conn, "general", "w-test")
    assert req2.id == second["id"]
    await queue.complete(conn, req2, "w-test", Outcome(status="success", summary="said bye",
                                                         output={"text": "bye"}))
    results = wait_for(lambda: [p for p in stack.fake.accepted("chat.postMessage") if p["text"].startswith("✅")
                                and "said bye" in p["text"]], 30, f"the second result\n{stack.daemon_output()}")
    assert results[0]["thread_ts"] == root
    assert sum(p["text"].startswith("queued") for p in stack.fake.accepted("chat.postMessage")) == 1
    assert len(await _requests(conn)) == 2  # the redelivered event created nothing


async def test_unlinked_user_is_told_and_creates_nothing(stack, conn):
    _, root = await _finished_thread(stack, conn)
    stack.fake.add_user("U0MALLORY", "mallory@example.com")  # verified, not a member
    r = app_mention(stack.api.url, SIGNING_SECRET, team=TEAM, user="U0MALLORY", text="<@UBOT> delete all",
                    event_id="Ev002", thread_ts=root)
    assert r.status_code == 200
    told = wait_for(lambda: stack.fake.accepted("chat.postEphemeral"), 30, "the ephemeral")
    assert told[0]["user"] == "U0MALLORY" and told[0]["thread_ts"] == root
    assert "ask an operator to link you" in told[0]["text"]
    assert len(await _requests(conn)) == 1


async def test_mentions_outside_eve_threads_create_nothing(stack, conn):
    _, root = await _finished_thread(stack, conn)
    for i, thread in enumerate([None, "1700000000.000001"]):  # a top-level mention; someone else's thread
        r = app_mention(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="<@UBOT> hi",
                        event_id=f"Ev1{i}", thread_ts=thread)
        assert r.status_code == 200
    told = wait_for(lambda: stack.fake.accepted("chat.postEphemeral"), 30, "the not-eve's-thread ephemeral")
    assert told[0]["thread_ts"] == "1700000000.000001" and "not one eve started" in told[0]["text"]
    assert len(await _requests(conn)) == 1


async def test_continuation_row_needs_a_visible_request_of_the_same_org(stack, conn):
    """RLS on eve.request_continuations: a member of another org cannot point at this thread's request."""
    first, _ = await _finished_thread(stack, conn)
    other = await make_tenant(conn, "globex")
    await conn.commit()
    pool = make_pool(stack.db_url, min_size=1, max_size=2, name="t")
    await pool.open()
    try:
        with pytest.raises(psycopg.Error):
            async with as_user(pool, other.user_id) as c:
                mine = await queue.enqueue(c, org_id=other.org_id, user_id=other.user_id, worker_type="general",
                                           prompt="x")
                await c.execute("INSERT INTO eve.request_continuations (request_id, org_id, continues) "
                                "VALUES (%s, %s, %s)", (mine.id, other.org_id, first.id))
        # the same insert for a request of its own org goes through (the check is what refused)
        async with as_user(pool, other.user_id) as c:
            a = await queue.enqueue(c, org_id=other.org_id, user_id=other.user_id, worker_type="general", prompt="a")
            b = await queue.enqueue(c, org_id=other.org_id, user_id=other.user_id, worker_type="general", prompt="b")
            await c.execute("INSERT INTO eve.request_continuations (request_id, org_id, continues) "
                            "VALUES (%s, %s, %s)", (b.id, other.org_id, a.id))
    finally:
        await pool.close()


async def test_mention_while_the_thread_still_runs_is_refused(stack, conn):
    """Its session is kept when it ends; a continuation queued now would start afresh."""
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="say hi", trigger_id="t-run")
    assert r.status_code == 200, r.text
    [req] = await queue.claim(conn, "general", "w-test")
    root = wait_for(lambda: [p for p in stack.fake.accepted("chat.postMessage") if p["text"].startswith("queued")],
                    30, "the thread root")[0]["_ts"]
    r = app_mention(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="<@UBOT> also this",
                    event_id="Ev3", thread_ts=root)
    assert r.status_code == 200
    told = wait_for(lambda: stack.fake.accepted("chat.postEphemeral"), 30, "the ephemeral")
    assert told[0]["user"] == SLACK_USER and "still working on" in told[0]["text"], told
    assert len(await _requests(conn)) == 1
    await queue.complete(conn, req, "w-test", Outcome(status="success", summary="hi", output={"text": "hi"}))


async def test_kept_sessions_expire_and_parked_ones_stay(conn):
    """The worker's reaper drops kept (finished) sessions past their age, never a parked one."""
    from eve import waiting
    from tests.support.tenants import make_tenant as mk

    t = await mk(conn, "initech")
    ids = [(await queue.enqueue(conn, org_id=t.org_id, user_id=t.user_id, worker_type="general", prompt=p)).id
           for p in ("old kept", "new kept", "parked")]
    for rid, finished in zip(ids, ["now() - interval '8 days'", "now() - interval '1 day'", "NULL"]):
        await conn.execute("INSERT INTO eve.request_sessions (request_id, org_id, session_id, transcript, "
                           f"finished_at) VALUES (%s, %s, 'sess-1234', '\\x00', {finished})", (rid, t.org_id))
    assert await waiting.expire_kept(conn, 7 * 86_400) == 1
    left = {r["request_id"] for r in await (await conn.execute("SELECT request_id FROM eve.request_sessions"))
            .fetchall()}
    assert left == {ids[1], ids[2]}
