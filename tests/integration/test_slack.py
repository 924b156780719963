"""Slack HTTP mode and delivery against the real API, the real daemon and a fake Slack Web API."""

from __future__ import annotations

import time
from typing import Any

import pytest

from eve import queue
from eve.models import Outcome
from tests.support.fake_slack import slash_command
from tests.support.slackstack import SIGNING_SECRET, SLACK_USER, TEAM, make_slack_stack
from tests.support.waiting import async_wait_for, wait_for


@pytest.fixture
async def stack(conn, db_url, tmp_path):
    s = await make_slack_stack(conn, db_url, tmp_path)
    try:
        yield s
    finally:
        s.stop()


async def _requests(conn: Any) -> list[dict[str, Any]]:
    return await (await conn.execute("SELECT id, prompt, worker_type, reply_to, user_id FROM "
                                     "eve.orchestration_requests ORDER BY created_at")).fetchall()


async def test_bad_signature_is_401_and_creates_nothing(stack, conn):
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="hello",
                      signature_secret="not-the-signing-secret-at-all!!")
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"
    assert await _requests(conn) == []
    assert stack.fake.accepted("users.info") == []  # nothing was parsed, nobody looked up


async def test_timestamp_older_than_five_minutes_is_401(stack, conn):
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="hello",
                      ts=int(time.time()) - 5 * 60 - 30)
    assert r.status_code == 401, r.text
    assert await _requests(conn) == []


async def test_unlinked_user_gets_the_ephemeral_message_and_no_request(stack, conn):
    stack.fake.add_user("U0MALLORY", "mallory@example.com")  # verified, but not a member of the org
    stack.fake.add_user("U0EVE", stack.tenant.email, verified=False)  # the member's email, unverified
    for user in ("U0MALLORY", "U0EVE", "U0NOBODY"):
        r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=user, text="delete everything",
                          trigger_id=f"t-{user}")
        assert r.status_code == 200, r.text
        assert "ask an operator to link you" in r.json()["text"]
        assert r.json().get("response_type", "ephemeral") == "ephemeral"
    assert await _requests(conn) == []


async def test_slash_command_creates_one_request_with_slack_reply_to(stack, conn):
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="code-review: look at #42",
                      trigger_id="t-once")
    assert r.status_code == 200, r.text
    assert r.json()["text"].startswith("Queued #")
    # Slack retries a delivery it thinks was lost: same trigger, no second request
    again = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER,
                          text="code-review: look at #42", trigger_id="t-once")
    assert again.status_code == 200
    rows = await _requests(conn)
    assert len(rows) == 1
    assert rows[0]["prompt"] == "look at #42" and rows[0]["worker_type"] == "code-review"
    assert rows[0]["user_id"] == stack.tenant.user_id
    assert rows[0]["reply_to"] == {"type": "slack", "team": TEAM, "channel": "C0CHAN", "thread_ts": None}


async def test_a_slash_command_past_the_orgs_budget_is_not_queued(stack, conn):
    """Slack is not a way around the org's limits: over its monthly budget, the command is
    answered with why (as POST /requests answers 402) and creates nothing."""
    await conn.execute("INSERT INTO eve.org_limits (org_id, monthly_budget_usd) VALUES (%s, 0)",
                       (stack.tenant.org_id,))
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="look at #42",
                      trigger_id="t-broke")
    assert r.status_code == 200, r.text
    text = r.json()["text"]
    assert text.startswith("Not queued:") and "monthly budget reached" in text, text
    assert await _requests(conn) == []


async def test_slack_429_then_200_delivers_every_message_exactly_once(stack, conn):
    # the thread root and the progress post are each refused once with 429 Retry-After: 1
    stack.fake.fail_next("chat.postMessage", 429, retry_after=1, times=2)
    stack.fake.fail_next("chat.update", 500, retry_after=None)
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="say hi", trigger_id="t-429")
    assert r.status_code == 200, r.text
    rid = (await _requests(conn))[0]["id"]
    stack.start_daemon()
    root = wait_for(lambda: stack.fake.accepted("chat.postMessage"), 30, "the thread root")[0]
    assert root["text"].startswith(f"queued · general · #{str(rid)[:8]}")
    assert len(stack.fake.refused("chat.postMessage")) >= 1

    # act as the worker through the real queue functions: claim, a tool call, the result
    [req] = await queue.claim(conn, "general", "w-test")
    await queue.append_events(conn, req.id, req.org_id, [("tool_call", {"tool": "Bash", "summary": "echo hi"})])
    wait_for(lambda: len(stack.fake.accepted("chat.postMessage")) >= 2, 30, "the progress message")
    await queue.append_events(conn, req.id, req.org_id, [("tool_call", {"tool": "Bash", "summary": "echo bye"})])
    await queue.complete(conn, req, "w-test", Outcome(status="success", summary="said hi", output={"text": "hi"},
                                                       cost_usd=None, duration_ms=10))

    async def done() -> bool:
        row = await (await conn.execute("SELECT done_at FROM eve.slack_threads WHERE request_id = %s",
                                        (rid,))).fetchone()
        return row["done_at"] is not None
    await async_wait_for(done, 30, "the thread to be delivered")

    posts = stack.fake.accepted("chat.postMessage")
    texts = [p["text"] for p in posts]
    assert sum(t.startswith("queued · general") for t in texts) == 1, texts
    assert sum("tool call" in t for t in texts) == 1, texts  # ONE progress message...
    assert sum(t.startswith("✅ done") for t in texts) == 1, texts
    assert len(posts) == 3, texts
    assert all(p.get("thread_ts") == root_ts(stack) for p in posts[1:]), posts
    progress_ts = _ts_of(stack, "tool call")
    updates = stack.fake.accepted("chat.update")
    assert updates and all(u["ts"] == progress_ts for u in updates)  # ...edited in place
    assert updates[-1]["text"].startswith("finished (success) · 2 tool calls")
    assert len(stack.fake.refused("chat.postMessage")) == 2  # both 429s happened...
    assert len(stack.fake.refused("chat.update")) == 1  # ...and the 500
    req_row = (await _requests(conn))[0]
    assert req_row["reply_to"]["thread_ts"] == root_ts(stack)


async def test_a_channel_slack_refuses_for_good_is_given_up_at_once(stack, conn):
    """eve removed from the channel (or the channel archived): no retry can post there, so
    the thread is closed after the first refusal, with the reason, instead of being retried
    every five minutes forever. The request itself is untouched."""
    stack.fake.fail_next("chat.postMessage", error="not_in_channel")
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="say hi", trigger_id="t-gone")
    assert r.status_code == 200, r.text
    rid = (await _requests(conn))[0]["id"]
    stack.start_daemon()

    async def closed() -> dict[str, Any] | None:
        row = await (await conn.execute("SELECT done_at, failures, last_error FROM eve.slack_threads "
                                        "WHERE request_id = %s", (rid,))).fetchone()
        return row if row["done_at"] is not None else None
    row = await async_wait_for(closed, 30, "the thread to be given up")
    assert "not_in_channel" in row["last_error"] and row["failures"] == 1
    assert len(stack.fake.refused("chat.postMessage")) == 1 and stack.fake.accepted("chat.postMessage") == []
    status = await (await conn.execute("SELECT status FROM eve.orchestration_requests WHERE id = %s",
                                       (rid,))).fetchone()
    assert status["status"] == "pending"


async def test_a_thread_slack_keeps_refusing_is_given_up_after_max_failures(stack, conn, db_url, monkeypatch):
    """Any other refusal (Slack down, a revoked token) is retried with backoff, but not
    forever: after MAX_FAILURES (about a day at the capped backoff; 3 here) the thread is closed."""
    from eve.db import make_pool
    from eve.slack import delivery, secretbox

    monkeypatch.setattr(delivery, "MAX_FAILURES", 3)
    monkeypatch.setenv("EVE_SLACK_API_URL", stack.fake.url)
    stack.fake.fail_next("chat.postMessage", 500, retry_after=None, times=10)
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="say hi", trigger_id="t-down")
    assert r.status_code == 200, r.text
    rid = (await _requests(conn))[0]["id"]
    pool = make_pool(db_url, service_only=True, name="slack-test")
    await pool.open(wait=True)
    try:
        loop = delivery.Delivery(pool, secretbox.key_from(stack.jwt_secret))
        for attempt in (1, 2, 3):
            await conn.execute("UPDATE eve.slack_threads SET next_try_at = now() WHERE request_id = %s", (rid,))
            assert await loop.tick() == 1, attempt
        row = await (await conn.execute("SELECT done_at, failures, last_error FROM eve.slack_threads "
                                        "WHERE request_id = %s", (rid,))).fetchone()
        assert row["done_at"] is not None and row["failures"] == 3 and "500" in row["last_error"], row
        assert len(stack.fake.refused("chat.postMessage")) == 3
        await conn.execute("UPDATE eve.slack_threads SET next_try_at = now() WHERE request_id = %s", (rid,))
        assert await loop.tick() == 0  # closed: never looked at again
    finally:
        await pool.close()


def root_ts(stack) -> str:
    return _ts_of(stack, "queued · ")


def _ts_of(stack, text: str) -> str:
    return next(p["_ts"] for p in stack.fake.accepted("chat.postMessage") if text in p["text"])


def _click(stack, user: str, question_msg: dict[str, Any], index: int):
    from tests.support.fake_slack import interaction

    blocks = question_msg["blocks"]
    blocks = blocks if isinstance(blocks, list) else __import__("json").loads(blocks)
    button = next(b for b in blocks if b["type"] == "actions")["elements"][index]
    payload = {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": user}, "channel": {"id": "C0CHAN"},
               "trigger_id": f"t-click-{user}-{index}", "api_app_id": "A0APP",
               "message": {"ts": question_msg["_ts"], "thread_ts": question_msg["thread_ts"]},
               "actions": [{**button, "block_id": "b", "action_ts": "1"}]}
    r = interaction(stack.api.url, SIGNING_SECRET, payload)
    assert r.status_code == 200, r.text


async def test_question_is_posted_with_buttons_and_a_click_answers_it_once(stack, conn):
    from eve import hitl

    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="deploy?", trigger_id="t-q")
    assert r.status_code == 200, r.text
    stack.start_daemon()
    [req] = await queue.claim(conn, "general", "w-test")
    q = await hitl.ask(conn, request_id=req.id, question="Deploy to production?", options=["yes", "no"])

    msg = wait_for(lambda: [p for p in stack.fake.accepted("chat.postMessage") if "The agent asks" in p["text"]],
                   30, f"the question in the thread\n{stack.daemon_output()}")[0]
    assert msg["thread_ts"] == root_ts(stack)
    stack.fake.add_user("U0MALLORY", "mallory@example.com")
    _click(stack, "U0MALLORY", msg, 0)  # not a member: told to get linked, nothing answered
    wait_for(lambda: stack.fake.accepted("chat.postEphemeral"), 30, "the ephemeral for the unlinked user")
    assert (await hitl.get_question(conn, q["id"]))["status"] == "pending"

    _click(stack, SLACK_USER, msg, 1)  # "no"

    async def answered() -> dict[str, Any] | None:
        row = await hitl.get_question(conn, q["id"])
        return row if row["status"] == "answered" else None
    row = await async_wait_for(answered, 30, "the answer")
    assert row["response"] == {"answer": "no", "via": "slack"} and row["answered_by"] == stack.tenant.user_id
    updated = wait_for(lambda: [u for u in stack.fake.accepted("chat.update") if u.get("ts") == msg["_ts"]],
                       30, "the question message updated")
    assert "answered: no" in updated[0]["text"]

    _click(stack, SLACK_USER, msg, 0)  # a second answer: 409 in the API, an ephemeral here
    closed = wait_for(lambda: [e for e in stack.fake.accepted("chat.postEphemeral")
                               if "question_closed" in e["text"]], 30, "the already-answered message")
    assert "already answered" in closed[0]["text"]
    assert (await hitl.get_question(conn, q["id"]))["response"]["answer"] == "no"
    posted = [p for p in stack.fake.accepted("chat.postMessage") if "The agent asks" in p["text"]]
    assert len(posted) == 1  # posted once


async def test_replay_button_queues_a_new_request_in_a_new_thread(stack, conn):
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="say hi", trigger_id="t-r")
    assert r.status_code == 200, r.text
    stack.start_daemon()
    [req] = await queue.claim(conn, "general", "w-test")
    await queue.complete(conn, req, "w-test", Outcome(status="success", summary="hi", output={"text": "hi"}))
    result = wait_for(lambda: [p for p in stack.fake.accepted("chat.postMessage") if p["text"].startswith("✅")],
                      30, "the result")[0]
    _click(stack, SLACK_USER, result, 0)  # Replay
    told = wait_for(lambda: stack.fake.accepted("chat.postEphemeral"), 30, "the replay's ephemeral")
    assert told[0]["text"].startswith("Replay queued as #")
    rows = await (await conn.execute("SELECT id, replay_of, prompt, reply_to FROM eve.orchestration_requests "
                                     "WHERE replay_of IS NOT NULL")).fetchall()
    assert len(rows) == 1 and rows[0]["replay_of"] == req.id and rows[0]["prompt"] == "say hi"
    replayed = [e.data for e in await queue.list_events(conn, req.id) if e.kind == "replayed"]
    assert replayed == [{"new_request_id": str(rows[0]["id"])}]
    roots = wait_for(lambda: [p for p in stack.fake.accepted("chat.postMessage") if p["text"].startswith("queued")
                              and str(rows[0]["id"])[:8] in p["text"]], 30, "the replay's own thread root")
    assert "thread_ts" not in roots[0]  # a new thread in the channel


async def test_slack_not_answering_users_info_is_not_mistaken_for_an_unknown_user(stack, conn):
    stack.fake.fail_next("users.info", 500, retry_after=None)
    stack.fake.add_user("U0BOB", "bob@elsewhere.example")
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user="U0BOB", text="hi", trigger_id="t-u")
    assert "slack_unavailable" in r.json()["text"] and "link you" not in r.json()["text"]
    assert await _requests(conn) == []


async def test_a_new_thread_root_is_posted_on_notify_not_on_the_poll(stack, conn):
    stack.start_daemon(EVE_SLACK_POLL_INTERVAL="120")
    wait_for(lambda: "listening on eve_slack" in stack.daemon_output(), 30, "the daemon to LISTEN")
    wait_for(lambda: "nothing due; next poll in 120" in stack.daemon_output(), 30, "the daemon to go idle")
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="hi", trigger_id="t-n")
    assert r.status_code == 200, r.text
    # far inside the 120 s poll: only the NOTIFY from the thread's insert can explain it
    wait_for(lambda: stack.fake.accepted("chat.postMessage"), 20, "the root, woken by NOTIFY")


def _submit_modal(stack, user: str, view: dict[str, Any], text: str):
    from tests.support.fake_slack import interaction

    payload = {"type": "view_submission", "team": {"id": TEAM}, "user": {"id": user}, "api_app_id": "A0APP",
               "trigger_id": f"t-submit-{user}",
               "view": {**view, "id": "V1", "state": {"values": {"answer": {"answer": {"type": "plain_text_input",
                                                                                          "value": text}}}}}}
    return interaction(stack.api.url, SIGNING_SECRET, payload)


async def test_a_free_text_question_is_answered_in_a_modal_once(stack, conn):
    import json

    from eve import hitl

    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="plan", trigger_id="t-ft")
    assert r.status_code == 200, r.text
    stack.start_daemon()
    [req] = await queue.claim(conn, "general", "w-test")
    q = await hitl.ask(conn, request_id=req.id, question="Which day should we ship?", options=[])
    msg = wait_for(lambda: [p for p in stack.fake.accepted("chat.postMessage") if "The agent asks" in p["text"]],
                   30, f"the question in the thread\n{stack.daemon_output()}")[0]

    stack.fake.add_user("U0MALLORY", "mallory@example.com")
    _click(stack, "U0MALLORY", msg, 0)  # not a member: told to get linked, no modal
    wait_for(lambda: stack.fake.accepted("chat.postEphemeral"), 30, "the ephemeral for the unlinked user")
    assert stack.fake.accepted("views.open") == []

    _click(stack, SLACK_USER, msg, 0)  # "Answer…" opens the modal
    opened = wait_for(lambda: stack.fake.accepted("views.open"), 30, "views.open")
    assert opened[0]["trigger_id"] == f"t-click-{SLACK_USER}-0"
    view = opened[0]["view"] if isinstance(opened[0]["view"], dict) else json.loads(opened[0]["view"])
    assert view["callback_id"] == "eve_answer_modal" and "Which day" in json.dumps(view["blocks"])

    r = _submit_modal(stack, "U0MALLORY", view, "never")  # a forged submission by an unlinked user
    assert r.status_code == 200 and r.json()["response_action"] == "errors", r.text
    r = _submit_modal(stack, SLACK_USER, view, "   ")
    assert r.json()["errors"]["answer"] == "An answer must not be empty.", r.text
    assert (await hitl.get_question(conn, q["id"]))["status"] == "pending"

    r = _submit_modal(stack, SLACK_USER, view, "Friday, after the freeze")
    assert r.status_code == 200 and not r.content.strip(), r.text  # accepted: the modal closes
    row = await hitl.get_question(conn, q["id"])
    assert row["status"] == "answered" and row["answered_by"] == stack.tenant.user_id
    assert row["response"] == {"answer": "Friday, after the freeze", "via": "slack"}
    updated = wait_for(lambda: [u for u in stack.fake.accepted("chat.update") if u.get("ts") == msg["_ts"]],
                       30, "the question message updated")
    assert "answered: Friday, after the freeze" in updated[0]["text"]

    r = _submit_modal(stack, SLACK_USER, view, "Monday")  # a second answer: refused in the modal
    assert "already answered" in r.json()["errors"]["answer"], r.text
    assert (await hitl.get_question(conn, q["id"]))["response"]["answer"] == "Friday, after the freeze"
