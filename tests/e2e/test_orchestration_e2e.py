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
from tests.e2e.fake_anthropic import FakeAnthropic, last_tool_result
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import api_and_worker, start_worker

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


def _texts(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")


def resumed_prompt(body: dict[str, Any]) -> str | None:
    """The text of the resumed turn's prompt (the outcome lines), when this call to the fake
    model is the resumed agent's own (it offers tools); None for any other call."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    resumed = next((_texts(m) for m in users if RESUMED in _texts(m)), None)
    return resumed if resumed is not None and body.get("tools") else None


class ResumedTurn:
    """The fake model's side of a resumed turn: `cat notes.txt` (the workspace came back?), then
    an answer naming the children from the outcome lines. Records what it was sent."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any] | None:
        resumed = resumed_prompt(body)
        if resumed is None:
            return None
        self.seen.append(body)
        notes = last_tool_result(body)
        if notes is None:
            return {"tool": "Bash", "input": {"command": "cat notes.txt || echo 'no notes'"}}
        kids = re.findall(rf"child ({UUID_RE}) success", resumed)
        return {"text": "Combined the results of " + " and ".join(kids) + f"; notes: {notes.strip()}"
                        + (" (files lost)" if "were not kept" in resumed else "")}


@pytest.fixture
def resumed_turn(fake_api: FakeAnthropic):
    rule = ResumedTurn()
    fake_api.add_rule(rule)
    try:
        yield rule
    finally:
        fake_api.rules.remove(rule)


async def test_parent_waits_for_two_children_and_is_resumed_on_another_worker(
        db_url, conn, tmp_path, variant_bin, resumed_turn: ResumedTurn):
    seen = resumed_turn.seen
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
        still = one(db_url, "SELECT status FROM eve.orchestration_requests WHERE id = %s", parent.id)
        assert still["status"] == "waiting"
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
        assert "notes: keep me" in res["summary"]  # the workspace travelled with the session
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
        # cost and tokens of both turns (the result line of the last turn counts only its own)
        usage = res["output"]["usage"]
        last_turn_tokens = sum(int(usage.get(k) or 0) for k in (
            "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        assert res["tokens_used"] > last_turn_tokens
        assert float(res["cost_usd"]) > float(res["output"]["total_cost_usd"])
        # the duration counts the turns, not the time spent waiting
        at = {r["kind"]: r["at"] for r in rows(db_url, "SELECT kind, min(at) AS at FROM eve.request_events "
                                                       "WHERE request_id = %s GROUP BY kind", parent.id)}
        waited_ms = (at["woken"] - at["waiting"]).total_seconds() * 1000
        wall_ms = (res["created_at"] - at["claimed"]).total_seconds() * 1000
        assert res["duration_ms"] > res["output"]["duration_ms"]
        assert res["duration_ms"] <= wall_ms - waited_ms + 1000
        waits = rows(db_url, "SELECT delivered_at FROM eve.request_waits WHERE request_id = %s", parent.id)
        assert len(waits) == 2 and all(w["delivered_at"] is not None for w in waits)
        assert one(db_url, "SELECT 1 FROM eve.request_sessions WHERE request_id = %s", parent.id) is None
        assert parked["attempts"] == 0  # waiting did not use up an attempt
    finally:
        for w in reversed(workers):
            w.stop()
        api.stop()


async def test_same_worker_reuses_the_directory_and_a_failed_child_is_reported(
        db_url, conn, tmp_path, variant_bin, resumed_turn: ResumedTurn):
    """One worker, archive cap 0 (nothing archived): the resume reuses the directory on this host,
    and a child that fails still wakes the parent, which is told so and decides."""
    tenant = await make_tenant(conn, "orch-local")
    with api_and_worker(db_url, tmp_path, variant_bin, env={"EVE_SESSION_ARCHIVE_MB": "0"}) as (api, worker):
        # the child's prompt makes the fake API fail it; spelled with printf so the brackets do not
        # end the parent's own [[bash: ...]]
        prompt = ("[[bash: eve request create -t general -p \"$(printf '\\133\\133api_error: 400\\135\\135')\" "
                  "--child --reply-to-parent && "
                  "echo 'keep me' > notes.txt && eve wait]]")
        parent = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                     prompt=prompt)
        res = wait_for(lambda: one(db_url, "SELECT * FROM eve.orchestration_results WHERE request_id = %s",
                                   parent.id), 120, "the parent's result")
        assert res["status"] == "success", res
        assert "notes: keep me" in res["summary"] and "(files lost)" not in res["summary"]
        resumed = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'resumed'",
                      parent.id)["data"]
        assert resumed["workspace"] == "reused"
        [child] = rows(db_url, "SELECT id FROM eve.orchestration_requests WHERE parent_id = %s", parent.id)
        told = _texts([m for m in resumed_turn.seen[-1]["messages"] if RESUMED in _texts(m)][0])
        assert f"child {child['id']} failed (api_error)" in told, told
        kept = one(db_url, "SELECT count(*) AS n FROM eve.request_sessions WHERE request_id = %s", parent.id)
        assert kept["n"] == 0


async def test_a_sparse_terabyte_in_the_workspace_is_not_archived_and_the_agent_is_told(
        db_url, conn, tmp_path, variant_bin, resumed_turn: ResumedTurn):
    """A hostile agent's `truncate -s 1T`: free for it, but archiving it would read a terabyte
    of zeros. The worker refuses it from the directory listing (within the deadline, not
    after reading), parks the request without its files, and the resumed agent (restoring
    from the database, not reusing the directory) is told they were not kept."""
    tenant = await make_tenant(conn, "orch-sparse")
    with api_and_worker(db_url, tmp_path, variant_bin, name="sparse", slots=2,
                        env={"EVE_SESSION_REUSE_LOCAL": "0"}) as (api, worker):
        prompt = ("[[bash: eve request create -t general -p 'child gamma' --child --reply-to-parent && "
                  "echo 'keep me' > notes.txt && truncate -s 1T huge.bin && ls -ls huge.bin && eve wait]]")
        parent = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                     prompt=prompt)
        res = wait_for(lambda: one(db_url, "SELECT * FROM eve.orchestration_results WHERE request_id = %s",
                                   parent.id), 120, "the parent's result")
        out = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'tool_result' "
                          "ORDER BY id", parent.id)["data"]["content"]
        assert "1099511627776" in out, out  # the agent really made it
        assert res["status"] == "success", res
        assert "no notes" in res["summary"] and "keep me" not in res["summary"], res["summary"]
        assert "(files lost)" in res["summary"], res["summary"]
        resumed = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'resumed'",
                      parent.id)["data"]
        assert resumed["workspace"] == "lost"


def parked_by(db_url: str, request_id: Any) -> str:
    return one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'claimed' ORDER BY id",
               request_id)["data"]["worker_id"]
