"""The HITL routes over real HTTP: every 4xx, the answer waking the request, events on the streams.

Questions are asked here through eve.hitl on the test's connection (the agent's side,
`POST /hitl` with a request token, is covered where request tokens exist: the e2e tests).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eve import hitl, queue
from eve.client import EveClient
from tests.integration.api.test_sse import until
from tests.support.tenants import make_tenant

pytestmark = pytest.mark.asyncio


async def _waiting_question(conn: Any, tenant: Any, **kw: Any) -> tuple[Any, dict[str, Any]]:
    req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                              prompt="deploy")
    [claimed] = await queue.claim(conn, "general", "w1", limit=1)
    kw.setdefault("question", "Deploy v2 to production?")
    kw.setdefault("options", ["yes", "no"])
    q = await hitl.ask(conn, request_id=claimed.id, **kw)
    await conn.execute("SELECT eve.request_park(%s, 'w1')", (claimed.id,))
    return claimed, q


async def test_list_show_and_answer_wake_the_request(api, conn, alice):
    req, q = await _waiting_question(conn, alice.tenant)
    r = alice.http.get("/hitl", params={"status": "pending"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 1 and [i["id"] for i in body["items"]] == [str(q["id"])]
    item = body["items"][0]
    assert item["options"] == ["yes", "no"] and item["status"] == "pending"
    assert item["requestId"] == str(req.id) and item["orgSlug"] == "alice-org" and item["expiresAt"]
    assert alice.http.get(f"/hitl/{q['id']}").json()["question"] == "Deploy v2 to production?"

    r = alice.http.post(f"/hitl/{q['id']}/answer", json={"answer": "yes"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "answered" and out["answer"] == "yes" and out["answeredByName"] == alice.tenant.email
    assert out["answeredBy"] == str(alice.tenant.user_id) and out["answeredVia"] == "api"
    assert alice.http.get(f"/requests/{req.id}").json()["status"] == "pending"
    assert alice.http.get("/hitl", params={"status": "pending"}).json() == {"items": [], "total": 0}
    kinds = [e["kind"] for e in alice.http.get(f"/requests/{req.id}/events").json()]
    assert "hitl_asked" in kinds and "hitl_answered" in kinds and kinds[-1] in ("woken", "hitl_answered")


async def test_bad_option_is_400_with_the_options(api, conn, alice):
    _, q = await _waiting_question(conn, alice.tenant)
    r = alice.http.post(f"/hitl/{q['id']}/answer", json={"answer": "maybe"})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_option", "message": "'maybe' is not one of the options: yes, no",
                        "options": ["yes", "no"]}
    for body in ({}, {"answer": ""}, {"answer": 3}, {"answer": "yes", "extra": 1}, {"answer": "a\x07"}):
        r = alice.http.post(f"/hitl/{q['id']}/answer", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"] == "invalid_input" and r.json()["message"]


async def test_second_answer_is_409_naming_who_answered_first(api, conn, alice):
    _, q = await _waiting_question(conn, alice.tenant)
    assert alice.http.post(f"/hitl/{q['id']}/answer", json={"answer": "no"}).status_code == 200
    r = alice.http.post(f"/hitl/{q['id']}/answer", json={"answer": "yes"})
    assert r.status_code == 409
    assert r.json()["error"] == "question_closed"
    assert f"already answered by {alice.tenant.email}" in r.json()["message"]


async def test_other_orgs_get_404_and_bad_ids_400(api, conn, alice, bob):
    _, q = await _waiting_question(conn, alice.tenant)
    for method, path, body in (("GET", f"/hitl/{q['id']}", None),
                               ("POST", f"/hitl/{q['id']}/answer", {"answer": "yes"})):
        r = bob.http.request(method, path, json=body)
        assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
        assert r.json()["message"] == f"question {q['id']} not found"
    assert bob.http.get("/hitl").json() == {"items": [], "total": 0}
    assert (await hitl.get_question(conn, q["id"]))["status"] == "pending"
    r = alice.http.get("/hitl/not-a-uuid")
    assert r.status_code == 400 and "question id" in r.json()["message"]
    r = alice.http.get("/hitl", params={"status": "open"})
    assert r.status_code == 400 and "unknown question status 'open'" in r.json()["message"]
    r = alice.http.get("/hitl", params={"org": "nope"})
    assert r.status_code == 404


async def test_a_person_cannot_ask_and_unauthenticated_calls_are_401(api, alice):
    r = alice.http.post("/hitl", json={"question": "Deploy?", "options": ["yes", "no"]})
    assert r.status_code == 403 and "only an agent asks" in r.json()["message"]
    import httpx
    r = httpx.get(f"{api.url}/hitl")
    assert r.status_code == 401


async def test_expired_and_cancelled_answers_are_409(api, conn, alice):
    req, q = await _waiting_question(conn, alice.tenant)
    await conn.execute("UPDATE eve.hitl_requests SET expires_at = now() - interval '1 s' WHERE id = %s", (q["id"],))
    r = alice.http.post(f"/hitl/{q['id']}/answer", json={"answer": "yes"})
    assert r.status_code == 409 and "expired at" in r.json()["message"]
    req2, q2 = await _waiting_question(conn, alice.tenant)
    assert alice.http.post(f"/requests/{req2.id}/cancel").status_code == 202
    assert alice.http.get(f"/hitl/{q2['id']}").json()["status"] == "cancelled"
    r = alice.http.post(f"/hitl/{q2['id']}/answer", json={"answer": "yes"})
    assert r.status_code == 409 and "cancelled" in r.json()["message"]


async def test_asked_and_answered_reach_the_firehose(api, conn):
    carol = await make_tenant(conn, "carol-org")
    async with EveClient(api.url, api_key=carol.api_key) as c:
        got, opened = until(c, "hitl_answered")
        await asyncio.wait_for(opened.wait(), 20)
        _, q = await _waiting_question(conn, carol)
        await c.answer_question(str(q["id"]), "no")
        events = await got
    kinds = [e["kind"] for e in events]
    assert "hitl_asked" in kinds and kinds[-1] == "hitl_answered", kinds
    assert events[-1]["data"]["answer"] == "no" and events[-1]["data"]["question_id"] == str(q["id"])
