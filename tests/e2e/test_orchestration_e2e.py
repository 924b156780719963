"""Orchestration through the real Claude Code CLI: children with reply-to, `eve wait`, park, resume.

A parent agent, in its sandbox, runs the real `eve` with the request token its worker
gave it: it creates two reply-to children and runs `eve wait`, then ends its turn. Its
worker (one slot) parks it — session stored, slot freed — and runs another request
meanwhile; then that worker goes away. The children run on a code-review worker; the
last child's result wakes the parent, which a *different* general worker resumes from
the stored session (transcript and workspace restored from the database, as on another
machine) and which finishes naming both children. The fake Messages API sees the
resumed turn carry the earlier turns.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import queue
from tests.e2e.fake_anthropic import FakeAnthropic
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e

RESUMED = "You are resumed"
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
PARENT_PROMPT = ("[[bash: eve request create -t code-review -p 'child alpha' --child --reply-to-parent && "
                 "eve request create -t code-review -p 'child beta' --child --reply-to-parent && "
                 "echo 'keep me' > notes.txt && eve wait]]")


def rows(dsn: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        return c.execute(sql, args).fetchall()


def one(dsn: str, sql: str, *args: Any) -> dict[str, Any] | None:
    found = rows(dsn, sql, *args)
    return found[0] if found else None


def _last_user_text(body: dict[str, Any]) -> str:
    msgs = [m for m in body.get("messages", []) if m.get("role") == "user"]
    if not msgs:
        return ""
    content = msgs[-1].get("content")
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")


async def test_parent_waits_for_two_children_and_is_resumed_on_another_worker(
        db_url, conn, tmp_path, variant_bin, fake_api: FakeAnthropic):
    seen: list[dict[str, Any]] = []

    def resumed_turn(body: dict[str, Any]) -> dict[str, Any] | None:
        text = _last_user_text(body)
        if RESUMED not in text or not body.get("tools"):
            return None
        seen.append(body)
        kids = re.findall(rf"child ({UUID_RE}) success", text)
        return {"text": "Combined the results of " + " and ".join(kids)}

    fake_api.add_rule(resumed_turn)
    tenant = await make_tenant(conn, "orch")
    api = start_api(db_url, tmp_path)
    workers = []
    try:
        api.wait_ready()
        env = {"EVE_API_URL": api.url, "EVE_LEASE_SECONDS": "5"}
        first = start_worker(db_url, tmp_path, path_prepend=variant_bin, env=env, name="first", slots=1)
        workers.append(first)
        first.wait_healthy()
        parent = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                     prompt=PARENT_PROMPT)
        wait_for(lambda: one(db_url, "SELECT 1 FROM eve.orchestration_requests WHERE id = %s AND status = 'waiting'",
                             parent.id), 90, "the parent to wait")
        parked = one(db_url, "SELECT claimed_by, lease_expires_at, attempts FROM eve.orchestration_requests "
                             "WHERE id = %s", parent.id)
        assert parked["claimed_by"] is None and parked["lease_expires_at"] is None
        assert one(db_url, "SELECT 1 FROM eve.orchestration_results WHERE request_id = %s", parent.id) is None
        kids = rows(db_url, "SELECT id, reply_to FROM eve.orchestration_requests WHERE parent_id = %s "
                            "ORDER BY created_at", parent.id)
        assert len(kids) == 2 and all(k["reply_to"] == {"type": "parent"} for k in kids)
        kid_ids = {str(k["id"]) for k in kids}
        waiting_ev = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'waiting'",
                         parent.id)
        assert {w["id"] for w in waiting_ev["data"]["waiting_for"]} == kid_ids
        # the agent ran the real `eve` in its sandbox, with its own token, and was told to stop
        out = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'tool_result'",
                  parent.id)["data"]["content"]
        assert "will wait for 2 child request(s)" in out and "END YOUR TURN NOW" in out, out
        token = one(db_url, "SELECT count(*) FILTER (WHERE revoked_at IS NULL) AS live, count(*) AS n "
                            "FROM eve.request_tokens WHERE request_id = %s", parent.id)
        assert token == {"live": 0, "n": 1}

        # the one slot is free: another request runs on the same worker while the parent waits
        other = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                    prompt="[[text: meanwhile]]")
        wait_for(lambda: one(db_url, "SELECT status FROM eve.orchestration_results WHERE request_id = %s",
                             other.id), 60, "the other request's result")
        ran_on = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'claimed'", other.id)
        assert ran_on["data"]["worker_id"] == parked_by(db_url, parent.id)
        assert one(db_url, "SELECT status FROM eve.orchestration_requests WHERE id = %s", parent.id)["status"] == "waiting"
        first.stop()

        # children on their own worker; the parent resumes on a new general worker that must
        # restore the session from the database (no reuse of the first worker's directory)
        reviewer = start_worker(db_url, tmp_path, path_prepend=variant_bin, env=env, name="reviewer",
                                worker_type="code-review")
        workers.append(reviewer)
        second = start_worker(db_url, tmp_path, path_prepend=variant_bin, name="second", slots=1,
                              env={**env, "EVE_SESSION_REUSE_LOCAL": "0"})
        workers.append(second)
        res = wait_for(lambda: one(db_url, "SELECT * FROM eve.orchestration_results WHERE request_id = %s",
                                   parent.id), 120, "the parent's result")
        assert res["status"] == "success", res
        for kid in kid_ids:
            assert kid in res["summary"], res["summary"]
        kinds = [r["kind"] for r in rows(db_url, "SELECT kind FROM eve.request_events WHERE request_id = %s "
                                                 "ORDER BY id", parent.id)]
        assert kinds.index("waiting") < kinds.index("woken") < kinds.index("resumed") < kinds.index("result")
        claims = rows(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'claimed' "
                              "ORDER BY id", parent.id)
        assert len(claims) == 2 and claims[0]["data"]["worker_id"] != claims[1]["data"]["worker_id"]
        resumed = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'resumed'",
                      parent.id)["data"]
        assert resumed["workspace"] == "restored" and resumed["turn"] == 2 and resumed["outcomes"] == 2
        # the resumed turn continued the conversation: the first prompt and its tool call are in it
        assert seen, "the fake API never saw the resumed turn"
        first_text = str(seen[-1]["messages"][0]["content"])
        assert "child alpha" in first_text and len(seen[-1]["messages"]) >= 4
        # cost and tokens of both turns, the waiting time left out
        assert res["tokens_used"] > 0 and float(res["cost_usd"]) > 0
        turns = rows(db_url, "SELECT kind, data FROM eve.request_events WHERE request_id = %s AND kind = 'result' ",
                     parent.id)
        assert turns
        waits = rows(db_url, "SELECT delivered_at FROM eve.request_waits WHERE request_id = %s", parent.id)
        assert len(waits) == 2 and all(w["delivered_at"] is not None for w in waits)
        assert one(db_url, "SELECT 1 FROM eve.request_sessions WHERE request_id = %s", parent.id) is None
        # the workspace came back with the session: the file the first turn wrote
        # (the second worker removes it after success, so look at the archive's event instead)
        assert parked["attempts"] == 0
    finally:
        for w in reversed(workers):
            w.stop()
        api.stop()
        fake_api.rules.remove(resumed_turn) if resumed_turn in fake_api.rules else None


def parked_by(db_url: str, request_id: Any) -> str:
    return one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'claimed' ORDER BY id",
               request_id)["data"]["worker_id"]
