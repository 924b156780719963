"""Request tokens (EVE_API_TOKEN) against the real API: what a hostile agent can and cannot do.

The worker's side is played by the real functions it calls (queue.claim, reqtokens.issue,
eve.request_park); the agent's side is plain HTTP with the token, as `eve` in the sandbox
would send it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from eve import queue, reqtokens
from eve.models import Outcome
from tests.integration.api.conftest import client_for
from tests.support.apiserver import start_api
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.asyncio


async def _running(conn: Any, tenant: Tenant, worker: str = "w1") -> tuple[Any, str]:
    """A claimed request of `tenant` and the token its agent would get."""
    req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                              prompt="parent")
    claimed = [r for r in await queue.claim(conn, "general", worker, limit=10) if r.id == req.id]
    assert claimed, "the request was not claimed"
    token = await reqtokens.issue(conn, request_id=req.id, org_id=tenant.org_id, attempt=claimed[0].attempts)
    return claimed[0], token


def _agent(api: Any, token: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def test_agent_creates_and_reads_its_own_children(api, conn, alice):
    parent, token = await _running(conn, alice.tenant)
    agent = _agent(api, token)
    r = agent.post("/requests", json={"workerType": "general", "prompt": "child a", "replyToParent": True})
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["parentId"] == str(parent.id)
    assert agent.get(f"/requests/{child['id']}").status_code == 200
    assert agent.get(f"/requests/{parent.id}").json()["id"] == str(parent.id)
    assert agent.get(f"/requests/{child['id']}/events").status_code == 200
    assert agent.get(f"/results/{child['id']}").status_code == 404  # no result yet, but visible
    kids = agent.get(f"/requests/{parent.id}/children").json()
    assert [k["id"] for k in kids] == [child["id"]] and kids[0]["replyToParent"] is True
    cur = await conn.execute("SELECT kind, ref_id FROM eve.request_waits WHERE request_id = %s", (parent.id,))
    assert [(w["kind"], str(w["ref_id"])) for w in await cur.fetchall()] == [("child", child["id"])]
    # the owner sees the same tree with a normal token
    tree = alice.http.get(f"/requests/{parent.id}/tree").json()
    assert [d["id"] for d in tree["descendants"]] == [child["id"]]


async def test_a_childs_priority_is_at_most_its_parents(api, conn, alice):
    """A hostile agent must not jump the queue (its org's and, within a priority, everyone's)
    by giving its work to a child of priority 1000."""
    req = await queue.enqueue(conn, org_id=alice.tenant.org_id, user_id=alice.tenant.user_id,
                              worker_type="general", prompt="parent", priority=5)
    [parent] = [r for r in await queue.claim(conn, "general", "w1", limit=10) if r.id == req.id]
    token = await reqtokens.issue(conn, request_id=parent.id, org_id=alice.tenant.org_id, attempt=parent.attempts)
    agent = _agent(api, token)
    for too_high in (6, 1000):
        r = agent.post("/requests", json={"workerType": "general", "prompt": "jump", "priority": too_high})
        assert r.status_code == 400 and set(r.json()) == {"error", "message"}, r.text
        assert r.json()["error"] == "invalid_input" and "parent's (5" in r.json()["message"], r.text
    # the owner's own JWT is held to the same rule for a child it names with parentId
    r = alice.http.post("/requests", json={"workerType": "general", "prompt": "jump", "priority": 6,
                                           "parentId": str(parent.id)})
    assert r.status_code == 400 and "parent's (5" in r.json()["message"], r.text
    cur = await conn.execute("SELECT count(*) AS n FROM eve.orchestration_requests WHERE parent_id = %s",
                             (parent.id,))
    assert (await cur.fetchone())["n"] == 0  # a refused child is not created
    made = {p: agent.post("/requests", json={"workerType": "general", "prompt": "ok",
                                             **({} if p is None else {"priority": p})}) for p in (5, -3, None)}
    assert {p: (r.status_code, r.json()["priority"]) for p, r in made.items()} == {
        5: (201, 5), -3: (201, -3), None: (201, 5)}  # without a priority a child inherits its parent's


async def test_agent_cannot_reach_outside_its_tree(api, conn, alice, bob):
    parent, token = await _running(conn, alice.tenant)
    sibling = await queue.enqueue(conn, org_id=alice.tenant.org_id, user_id=alice.tenant.user_id,
                                  worker_type="general", prompt="another request of the same org")
    foreign = await queue.enqueue(conn, org_id=bob.tenant.org_id, user_id=bob.tenant.user_id,
                                  worker_type="general", prompt="bob's")
    agent = _agent(api, token)
    for rid in (sibling.id, foreign.id):
        for path in (f"/requests/{rid}", f"/results/{rid}", f"/requests/{rid}/events",
                     f"/requests/{rid}/children", f"/requests/{rid}/tree"):
            r = agent.get(path)
            assert r.status_code == 404, (path, r.status_code, r.text)
    # the same-org sibling exists: the owner sees it, the agent must not
    assert alice.http.get(f"/requests/{sibling.id}").status_code == 200
    # routes agents may not use at all
    for method, path in (("GET", "/requests"), ("GET", "/queue"), ("GET", "/workers"), ("GET", "/stats"),
                         ("POST", f"/requests/{sibling.id}/cancel"), ("POST", f"/requests/{parent.id}/replay"),
                         ("GET", "/events/stream"), ("GET", "/schedules")):
        r = agent.request(method, path)
        assert r.status_code == 403, (method, path, r.text)
        assert "request token" in r.json()["message"]
    # children of someone else, or waiting on behalf of someone else
    r = agent.post("/requests", json={"workerType": "general", "prompt": "x", "parentId": str(sibling.id)})
    assert r.status_code == 403
    assert agent.post(f"/requests/{sibling.id}/wait").status_code == 403
    # a child the agent made still belongs to its tree, and the ancestors of the agent stay hidden
    tree = agent.get(f"/requests/{parent.id}/tree").json()
    assert tree["ancestors"] == []


async def test_token_dies_with_the_attempt(api, conn, alice):
    parent, token = await _running(conn, alice.tenant)
    agent = _agent(api, token)
    assert agent.get(f"/requests/{parent.id}").status_code == 200
    ex = httpx.post(f"{api.url}/auth/token", json={"apiKey": token})
    assert ex.status_code == 200 and ex.json()["token"] == token
    await queue.complete(conn, parent, "w1", Outcome(status="success", summary="done"))
    for r in (agent.get(f"/requests/{parent.id}"), httpx.post(f"{api.url}/auth/token", json={"apiKey": token})):
        assert r.status_code == 401, r.text
    # a tampered secret, a made-up prefix, and garbage say the same
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), f"everq_{'0' * 12}_{'x' * 43}", "everq_nope"):
        r = _agent(api, bad).get(f"/requests/{parent.id}")
        assert r.status_code == 401 and r.json()["message"] == "invalid or expired credentials"


async def test_revoked_or_parked_token_is_refused(api, conn, alice):
    parent, token = await _running(conn, alice.tenant)
    await reqtokens.revoke(conn, parent.id)
    assert _agent(api, token).get(f"/requests/{parent.id}").status_code == 401
    # a new attempt's token works; parking (the turn is over) kills it, and waking does not revive it
    token2 = await reqtokens.issue(conn, request_id=parent.id, org_id=alice.tenant.org_id, attempt=parent.attempts)
    agent = _agent(api, token2)
    child = agent.post("/requests", json={"workerType": "general", "prompt": "c", "replyToParent": True}).json()
    assert agent.post(f"/requests/{parent.id}/wait").status_code == 202
    cur = await conn.execute("SELECT eve.request_park(%s, 'w1') AS s", (parent.id,))
    assert (await cur.fetchone())["s"] == "waiting"
    assert agent.get(f"/requests/{parent.id}").status_code == 401
    [c] = [r for r in await queue.claim(conn, "general", "w2", limit=10) if str(r.id) == child["id"]]
    await queue.complete(conn, c, "w2", Outcome(status="success", summary="child done"))
    [again] = [r for r in await queue.claim(conn, "general", "w1", limit=10) if r.id == parent.id]
    assert again.attempts == parent.attempts  # waiting did not use up an attempt
    assert agent.get(f"/requests/{parent.id}").status_code == 401


async def test_wait_needs_children_and_a_running_request(api, conn, alice):
    parent, token = await _running(conn, alice.tenant)
    agent = _agent(api, token)
    r = agent.post(f"/requests/{parent.id}/wait")
    assert r.status_code == 409 and "--reply-to-parent" in r.json()["message"]
    agent.post("/requests", json={"workerType": "general", "prompt": "c", "replyToParent": True})
    r = agent.post(f"/requests/{parent.id}/wait")
    assert r.status_code == 202 and len(r.json()["waitingFor"]) == 1
    cur = await conn.execute("SELECT wait_requested_at FROM eve.orchestration_requests WHERE id = %s", (parent.id,))
    assert (await cur.fetchone())["wait_requested_at"] is not None
    # replyToParent without a parent is a user mistake, said plainly
    r = alice.http.post("/requests", json={"workerType": "general", "prompt": "c", "replyToParent": True})
    assert r.status_code == 400 and "parentId" in r.json()["message"]


async def test_tree_limits_answer_4xx(db_url, tmp_path, conn):
    server = start_api(db_url, tmp_path, env={"EVE_TREE_MAX_DEPTH": "2", "EVE_TREE_MAX_REQUESTS": "3"}, name="api-lim")
    try:
        server.wait_ready()
        owner = client_for(server, await make_tenant(conn, "limits-org"))
        root = owner.http.post("/requests", json={"workerType": "general", "prompt": "root"}).json()["id"]
        a = owner.http.post("/requests", json={"workerType": "general", "prompt": "a", "parentId": root}).json()["id"]
        b = owner.http.post("/requests", json={"workerType": "general", "prompt": "b", "parentId": a}).json()["id"]
        r = owner.http.post("/requests", json={"workerType": "general", "prompt": "c", "parentId": b})
        assert r.status_code == 400
        assert "too deep" in r.json()["message"] and "EVE_TREE_MAX_DEPTH" in r.json()["message"]
        assert owner.http.post("/requests", json={"workerType": "general", "prompt": "d",
                                                  "parentId": root}).status_code == 201
        r = owner.http.post("/requests", json={"workerType": "general", "prompt": "e", "parentId": a})
        assert r.status_code == 409 and "tree full" in r.json()["message"]
    finally:
        server.stop()


async def test_cancelling_a_parent_cancels_its_descendants(api, conn, alice):
    parent, token = await _running(conn, alice.tenant)
    agent = _agent(api, token)
    kids = [agent.post("/requests", json={"workerType": "general", "prompt": f"c{i}", "replyToParent": True,
                                          "priority": i - 1}).json()  # at most the parent's (0)
            for i in range(2)]
    grandchild = alice.http.post("/requests", json={"workerType": "general", "prompt": "g",
                                                    "parentId": kids[0]["id"]}).json()
    [running] = await queue.claim(conn, "general", "w2", limit=1)  # the higher priority: kids[1]
    assert str(running.id) == kids[1]["id"]
    r = alice.http.post(f"/requests/{parent.id}/cancel")
    assert r.status_code == 202
    status = {}
    for rid in (kids[0]["id"], grandchild["id"], kids[1]["id"]):
        cur = await conn.execute("SELECT status, cancel_requested_at FROM eve.orchestration_requests WHERE id = %s",
                                 (rid,))
        status[rid] = await cur.fetchone()
    assert status[kids[0]["id"]]["status"] == "cancelled"
    assert status[grandchild["id"]]["status"] == "cancelled"
    assert status[kids[1]["id"]]["status"] == "claimed" and status[kids[1]["id"]]["cancel_requested_at"]
    # its worker learns of the cancel through the flag (NOTIFY eve_cancel) and writes the result


def _eve(api: Any, tmp_path: Any, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real `eve` CLI as an agent runs it: only the variables its worker gives it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("EVE_")}
    base.update({"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "NO_COLOR": "1", "COLUMNS": "200",
                 "EVE_API_URL": api.url, **env})
    return subprocess.run([sys.executable, "-m", "eve.cli", *args], env=base, capture_output=True, text=True,
                          timeout=120)


async def test_agent_cli_children_tree_and_wait(api, conn, alice, tmp_path):
    parent, token = await _running(conn, alice.tenant)
    agent = {"EVE_API_TOKEN": token, "EVE_REQUEST_ID": str(parent.id)}
    r = _eve(api, tmp_path, "wait", **agent)
    assert r.returncode != 0 and "--reply-to-parent" in r.stderr and "Traceback" not in r.stderr
    r = _eve(api, tmp_path, "request", "create", "-t", "general", "-p", "child one", "--child", "--reply-to-parent",
             "--json", **agent)
    assert r.returncode == 0, r.stderr
    child = json.loads(r.stdout)
    assert child["parentId"] == str(parent.id)
    r = _eve(api, tmp_path, "request", "children", **agent)
    assert r.returncode == 0 and child["id"] in r.stdout and "pending" in r.stdout
    r = _eve(api, tmp_path, "request", "tree", "--json", **agent)
    assert [d["id"] for d in json.loads(r.stdout)["descendants"]] == [child["id"]]
    r = _eve(api, tmp_path, "wait", **agent)
    assert r.returncode == 0 and "END YOUR TURN NOW" in r.stdout and child["id"] in r.stdout
    # outside an agent: --child has no request to hang under, said plainly
    r = _eve(api, tmp_path, "request", "create", "-t", "general", "-p", "x", "--child")
    assert r.returncode != 0 and "EVE_REQUEST_ID" in r.stderr and "Traceback" not in r.stderr


async def test_a_parent_must_be_a_request_of_the_callers_org(api, conn, alice, bob):
    foreign = await queue.enqueue(conn, org_id=bob.tenant.org_id, user_id=bob.tenant.user_id,
                                  worker_type="general", prompt="bob's")
    r = alice.http.post("/requests", json={"workerType": "general", "prompt": "x", "parentId": str(foreign.id),
                                           "replyToParent": True})
    assert r.status_code == 400 and "parentId" in r.json()["message"]
    cur = await conn.execute("SELECT count(*) AS n FROM eve.orchestration_requests WHERE parent_id = %s",
                             (foreign.id,))
    assert (await cur.fetchone())["n"] == 0
