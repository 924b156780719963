"""Human in the loop through the real Claude Code CLI: `eve ask`, park, answer, resume.

An agent, in its sandbox, runs the real `eve ask` with the request token its worker gave
it (two options) and ends its turn. Its worker (one slot) parks it — the slot is free,
so another request runs meanwhile. A person answers through the HTTP API; the request
wakes and the same worker resumes the same Claude Code session, whose next call to the
(fake) Messages API carries the earlier turns and the outcome line with the answer; the
final result uses it. Once more with a question that expires: the worker's scheduler
loop expires it and the agent is resumed with "No answer by <time>".
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from typing import Any

import httpx
import pytest

from eve import queue
from tests.e2e.fake_anthropic import FakeAnthropic
from tests.e2e.test_orchestration_e2e import RESUMED, _texts, one, resumed_prompt, rows
from tests.support.tenants import make_tenant
from tests.support.tmux import Tmux
from tests.support.waiting import wait_for
from tests.support.workerproc import api_and_worker

pytestmark = pytest.mark.e2e

ASK = "[[bash: eve ask 'Deploy v2 to production?' --option yes --option no]]"
ASK_EXPIRING = "[[bash: eve ask 'Merge the release branch now?' --option yes --option no --timeout 3s]]"


class Decision:
    """The fake model's resumed turn: decide from the outcome line it was told. Records the bodies."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any] | None:
        resumed = resumed_prompt(body)
        if resumed is None:
            return None
        self.seen.append(body)
        answered = re.search(r'The human \(([^)]+)\) answered "([^"]+)": (\S+)', resumed)
        if answered:
            verb = "Deploying v2" if answered.group(3) == "yes" else "Not deploying"
            return {"text": f"{verb}: {answered.group(1)} answered {answered.group(3)}."}
        expired = re.search(r'No answer by ([^"]+) to "([^"]+)"', resumed)
        if expired:
            return {"text": f"Nobody answered by {expired.group(1).strip()}; not merging."}
        return {"text": "resumed without a decision"}


@pytest.fixture
def decision(fake_api: FakeAnthropic):
    rule = Decision()
    fake_api.add_rule(rule)
    try:
        yield rule
    finally:
        fake_api.rules.remove(rule)


def _question(db_url: str, request_id: Any) -> dict[str, Any] | None:
    return one(db_url, "SELECT * FROM eve.hitl_requests WHERE request_id = %s", request_id)


def _kinds(db_url: str, request_id: Any) -> list[str]:
    return [r["kind"] for r in rows(db_url, "SELECT kind FROM eve.request_events WHERE request_id = %s ORDER BY id",
                                    request_id)]


async def test_agent_asks_waits_without_a_slot_and_resumes_the_same_session_with_the_answer(
        db_url, conn, tmp_path, variant_bin, decision: Decision):
    tenant = await make_tenant(conn, "hitl")
    with api_and_worker(db_url, tmp_path, variant_bin) as (api, worker):
        req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt=ASK)
        wait_for(lambda: one(db_url, "SELECT 1 FROM eve.orchestration_requests WHERE id = %s AND status = 'waiting'",
                             req.id), 90, "the request to wait")
        q = _question(db_url, req.id)
        assert q is not None and q["status"] == "pending" and q["options"] == ["yes", "no"]
        assert q["question"] == "Deploy v2 to production?"
        # the agent ran the real `eve ask` with its own token and was told to stop
        out = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'tool_result'",
                  req.id)["data"]["content"]
        assert f"Question {q['id']} asked" in out and "END YOUR TURN NOW" in out, out
        parked = one(db_url, "SELECT claimed_by, lease_expires_at FROM eve.orchestration_requests WHERE id = %s",
                     req.id)
        assert parked == {"claimed_by": None, "lease_expires_at": None}
        waiting = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'waiting'",
                      req.id)["data"]
        assert waiting["waiting_for"] == [{"kind": "question", "id": str(q["id"])}]

        # the one slot is free: another request runs on the same worker while the agent waits
        other = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                    prompt="[[text: meanwhile]]")
        done = wait_for(lambda: one(db_url, "SELECT status FROM eve.orchestration_results WHERE request_id = %s",
                                    other.id), 60, "the other request's result")
        assert done["status"] == "success"
        assert one(db_url, "SELECT status FROM eve.orchestration_requests WHERE id = %s", req.id)["status"] == "waiting"

        # a person answers through the API
        token = httpx.post(f"{api.url}/auth/token", json={"apiKey": tenant.api_key}).json()["token"]
        http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        pending = http.get("/hitl", params={"status": "pending"}).json()
        assert [i["id"] for i in pending["items"]] == [str(q["id"])]
        r = http.post(f"/hitl/{q['id']}/answer", json={"answer": "yes"})
        assert r.status_code == 200, r.text

        res = wait_for(lambda: one(db_url, "SELECT * FROM eve.orchestration_results WHERE request_id = %s", req.id),
                       120, "the result")
        assert res["status"] == "success", res
        assert res["summary"] == f"Deploying v2: {tenant.email} answered yes.", res["summary"]
        # the same session went on: the resumed call carries the first prompt and the `eve ask` turn
        assert decision.seen, "the fake API never saw the resumed turn"
        body = decision.seen[-1]
        assert "eve ask 'Deploy v2 to production?'" in str(body["messages"][0]["content"])
        assert len(body["messages"]) >= 4
        told = [_texts(m) for m in body["messages"] if RESUMED in _texts(m)][0]
        assert f'The human ({tenant.email}) answered "Deploy v2 to production?": yes' in told
        kinds = _kinds(db_url, req.id)
        assert kinds.index("hitl_asked") < kinds.index("waiting") < kinds.index("hitl_answered") \
            < kinds.index("woken") < kinds.index("resumed") < kinds.index("result")
        assert _question(db_url, req.id)["status"] == "answered"
        wait = one(db_url, "SELECT delivered_at FROM eve.request_waits WHERE ref_id = %s", q["id"])
        assert wait["delivered_at"] is not None
        r = http.post(f"/hitl/{q['id']}/answer", json={"answer": "no"})
        assert r.status_code == 409 and f"already answered by {tenant.email}" in r.json()["message"]


async def test_a_question_nobody_answers_expires_and_the_agent_decides(
        db_url, conn, tmp_path, variant_bin, decision: Decision):
    tenant = await make_tenant(conn, "hitl-expiry")
    with api_and_worker(db_url, tmp_path, variant_bin) as (api, worker):
        req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt=ASK_EXPIRING)
        res = wait_for(lambda: one(db_url, "SELECT * FROM eve.orchestration_results WHERE request_id = %s", req.id),
                       120, "the result after the question expired")
        assert res["status"] == "success", res
        q = _question(db_url, req.id)
        assert q["status"] == "expired" and q["response"] is None
        stamp = q["expires_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
        assert res["summary"] == f"Nobody answered by {stamp}; not merging.", res["summary"]
        kinds = _kinds(db_url, req.id)
        assert "hitl_expired" in kinds and kinds.index("hitl_expired") < kinds.index("resumed")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (apt-get install tmux)")
async def test_the_answer_given_by_driving_eve_ui_in_a_real_terminal(
        db_url, conn, tmp_path, variant_bin, decision: Decision):
    """The header shows the waiting question, `a` lists it, Enter opens the dialog, `1` answers yes."""
    tenant = await make_tenant(conn, "hitl-ui")
    with api_and_worker(db_url, tmp_path, variant_bin) as (api, worker), Tmux("eve-ui-hitl", timeout=30) as term:
        req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt=ASK)
        wait_for(lambda: one(db_url, "SELECT 1 FROM eve.orchestration_requests WHERE id = %s AND status = 'waiting'",
                             req.id), 90, "the request to wait")
        env = {**os.environ, "EVE_API_URL": api.url, "EVE_API_KEY": tenant.api_key, "TERM": "xterm-256color",
               "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
        env.pop("EVE_API_TOKEN", None)
        term.start(f"{sys.executable} -m eve.cli ui --refresh 1s; sleep 30", env)
        wait_screen, keys = term.wait_screen, term.keys

        wait_screen("1 question (a)")
        keys("a")
        out = wait_screen("Questions (1, pending")
        assert "Deploy v2 to production?" in out and "yes / no" in out
        keys("Enter")
        out = wait_screen("1: yes")
        assert "2: no" in out and f"Question from request {str(req.id)[:8]}" in out
        keys("1")
        wait_screen("Answer 'yes' to question")  # an answer asks first, like every other action
        keys("y")
        res = wait_for(lambda: one(db_url, "SELECT * FROM eve.orchestration_results WHERE request_id = %s", req.id),
                       120, "the result")
        assert res["status"] == "success" and res["summary"] == f"Deploying v2: {tenant.email} answered yes."
        wait_screen("0 questions")
        q = _question(db_url, req.id)
        assert q["status"] == "answered" and q["answered_by"] == tenant.user_id
