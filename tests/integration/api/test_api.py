"""The HTTP API over real HTTP: auth, tenancy, requests, results, events, errors."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from psycopg.rows import dict_row

from eve import queue
from eve.models import Outcome
from tests.integration.api.conftest import Client


def create(c: Client, **body: Any) -> httpx.Response:
    body.setdefault("workerType", "general")
    body.setdefault("prompt", "do it")
    return c.http.post("/requests", json=body)


async def work(db_url: str, outcome: Outcome, worker_type: str = "general") -> Any:
    """Play the worker's part through the real queue: claim one request and finish it."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        [req] = await queue.claim(c, worker_type, "test-worker")
        await queue.append_events(c, req.id, req.org_id, [("tool_call", {"tool": "Bash", "summary": "Bash ls"})])
        await queue.complete(c, req, "test-worker", outcome)
        return req


# -- auth -----------------------------------------------------------------------------------------


def test_token_exchange_and_bad_keys(api, alice):
    r = httpx.post(f"{api.url}/auth/token", json={"apiKey": alice.tenant.api_key})
    body = r.json()
    assert r.status_code == 200 and set(body) == {"token", "expiresAt"}
    claims = jwt.decode(body["token"], api.jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == str(alice.tenant.user_id) and claims["org"] == str(alice.tenant.org_id)
    assert claims["role"] == "owner" and claims["op"] is False and claims["jti"] and claims["exp"] > claims["iat"]
    prefix = alice.tenant.api_key.split("_")[1]
    for bad in ("nope", alice.tenant.api_key[:-1] + ("A" if alice.tenant.api_key[-1] != "A" else "B"),
                f"eve_{prefix}_" + "x" * 43, "eve_00000000_" + "x" * 43, ""):
        r = httpx.post(f"{api.url}/auth/token", json={"apiKey": bad})
        assert r.status_code == 401 and r.json() == {"error": "unauthorized",
                                                     "message": "invalid or expired credentials"}
    assert httpx.post(f"{api.url}/auth/token", json={"key": "x"}).status_code == 400


async def test_revoked_key_cannot_mint_tokens(api, alice, conn):
    from eve import admin

    await admin.revoke_api_key(conn, alice.tenant.api_key)
    assert httpx.post(f"{api.url}/auth/token", json={"apiKey": alice.tenant.api_key}).status_code == 401


async def test_last_used_at_is_recorded(api, alice, conn):
    cur = await conn.execute("SELECT last_used_at FROM eve.api_keys WHERE user_id = %s", (alice.tenant.user_id,))
    assert (await cur.fetchone())["last_used_at"] is not None


def test_bad_tokens_are_401(api, alice):
    now = datetime.now(timezone.utc)
    good = jwt.decode(alice.token, api.jwt_secret, algorithms=["HS256"])
    expired = jwt.encode({**good, "exp": int((now - timedelta(minutes=1)).timestamp())}, api.jwt_secret, "HS256")
    wrong_secret = jwt.encode(good, "s" * 40, "HS256")
    header, payload, sig = alice.token.split(".")
    tampered_claims = base64.urlsafe_b64encode(json.dumps({**good, "op": True}).encode()).decode().rstrip("=")
    tampered = f"{header}.{tampered_claims}.{sig}"
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    alg_none = f"{none_header}.{payload}."
    no_exp = jwt.encode({k: v for k, v in good.items() if k != "exp"}, api.jwt_secret, "HS256")
    for token in (expired, wrong_secret, tampered, alg_none, no_exp, "garbage"):
        r = httpx.get(f"{api.url}/requests", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
        assert r.json()["error"] == "unauthorized"
    assert httpx.get(f"{api.url}/requests").status_code == 401
    assert httpx.get(f"{api.url}/requests", headers={"Authorization": "Basic abc"}).status_code == 401


# -- requests ---------------------------------------------------------------------------------


def test_create_and_get_request(alice):
    r = create(alice, prompt="review", context={"repo": "a/b"},
               config={"variant": "zai", "timeoutMs": 60000, "allowedTools": ["Bash"]}, priority=2)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "pending" and body["workerType"] == "general" and body["priority"] == 2
    assert body["config"] == {"variant": "zai", "timeoutMs": 60000, "allowedTools": ["Bash"]}
    assert body["context"] == {"repo": "a/b"} and body["result"] is None and body["createdAt"].endswith("Z")
    got = alice.http.get(f"/requests/{body['id']}").json()
    assert got["id"] == body["id"] and got["prompt"] == "review"


@pytest.mark.parametrize(("body", "status", "code", "text"), [
    ({"workerType": "nonexistent-worker", "prompt": "This should fail"}, 400, "invalid_worker_type",
     "Invalid worker type"),
    ({"workerType": "general", "prompt": ""}, 400, "invalid_input", "prompt must not be empty"),
    ({"workerType": "general", "prompt": "x", "bogus": 1}, 400, "invalid_input", "bogus"),
    ({"workerType": "general", "prompt": 5}, 400, "invalid_input", "prompt"),
    ({"workerType": "general", "prompt": "x", "context": [1]}, 400, "invalid_input", "context"),
    ({"workerType": "general", "prompt": "x", "config": {"timeout": 1}}, 400, "invalid_input", "timeout"),
    ({"workerType": "general", "prompt": "x", "config": {"timeoutMs": 86_400_000}}, 400, "timeout_over_cap",
     "over the cap of 7200000 ms (120 min)"),
    ({"workerType": "general", "prompt": "x", "blockedBy": ["nope"]}, 400, "invalid_input", "UUID"),
    ({"workerType": "general", "prompt": "x" * 1_100_000}, 413, "payload_too_large", "1 MB"),
    ({"prompt": "x"}, 400, "invalid_input", "workerType"),
])
def test_bad_requests_get_clear_errors(alice, body, status, code, text):
    r = alice.http.post("/requests", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and text in r.json()["message"]


def test_body_over_2mb_is_413_and_malformed_json_400(alice):
    r = alice.http.post("/requests", content=b'{"workerType": "general", "prompt": "' + b"x" * 2_200_000 + b'"}',
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    r = alice.http.post("/requests", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_input"
    assert alice.http.get("/requests").json()["items"] == []


def test_list_is_newest_first_with_keyset_pagination(alice):
    ids = [create(alice, prompt=f"p{i}").json()["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        page = alice.http.get("/requests", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    assert alice.http.get("/requests", params={"status": "completed"}).json()["items"] == []
    assert len(alice.http.get("/requests", params={"workerType": "general"}).json()["items"]) == 7
    assert alice.http.get("/requests", params={"cursor": "garbage!"}).status_code == 400
    assert alice.http.get("/requests", params={"limit": 0}).status_code == 400


async def test_result_is_404_until_it_exists(db_url, alice):
    rid = create(alice).json()["id"]
    r = alice.http.get(f"/results/{rid}")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    await work(db_url, Outcome(status="success", output={"result": "ok"}, summary="ok", duration_ms=5,
                               tokens_used=10, cost_usd=0.5))
    r = alice.http.get(f"/results/{rid}")
    assert r.status_code == 200
    assert r.json() | {"createdAt": None} == {
        "requestId": rid, "status": "success", "output": {"result": "ok"}, "summary": "ok", "durationMs": 5,
        "tokensUsed": 10, "costUsd": 0.5, "error": None, "errorCode": None, "createdAt": None}
    detail = alice.http.get(f"/requests/{rid}").json()
    assert detail["status"] == "completed" and detail["result"]["status"] == "success"
    assert detail["attempts"] == 1 and detail["claimedBy"] == "test-worker"


async def test_cancel_and_replay(db_url, alice):
    rid = create(alice).json()["id"]
    r = alice.http.post(f"/requests/{rid}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    r = alice.http.post(f"/requests/{rid}/cancel")
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = alice.http.post(f"/requests/{rid}/replay")
    assert r.status_code == 201 and r.json()["replayOf"] == rid and r.json()["status"] == "pending"


def test_malformed_ids_and_unknown_routes(alice):
    assert alice.http.get("/requests/not-a-uuid").status_code == 400
    r = alice.http.get("/requests/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = alice.http.get("/nope")
    assert r.status_code == 404 and set(r.json()) == {"error", "message"}



def test_a_nul_character_in_a_text_parameter_is_bad_input_not_a_server_error(alice):
    # found by schemathesis: psycopg refuses NUL in text before sending, which surfaced as a 500
    for path, params in (("/requests", {"q": "a\x00b"}), ("/requests", {"workerType": "x\x00"}),
                         ("/schedules", {"org": "\x00"})):
        r = alice.http.get(path, params=params)
        assert r.status_code == 400, (path, r.text)
        assert r.json() == {"error": "invalid_input", "message": "text values must not contain NUL (\\u0000) characters"}


# -- tenancy ------------------------------------------------------------------------------------


async def test_another_orgs_things_do_not_exist(db_url, alice, bob):
    rid = create(bob).json()["id"]
    await work(db_url, Outcome(status="success"))
    for method, path in (("GET", f"/requests/{rid}"), ("GET", f"/results/{rid}"),
                         ("GET", f"/requests/{rid}/events"), ("POST", f"/requests/{rid}/cancel"),
                         ("POST", f"/requests/{rid}/replay")):
        r = alice.http.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
    with alice.http.stream("GET", f"/requests/{rid}/events", headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 404
    assert alice.http.get("/requests").json()["items"] == []
    assert len(bob.http.get(f"/requests/{rid}/events").json()) >= 2
    assert alice.http.get("/requests", params={"org": "bob-org"}).status_code == 404


async def test_operator_sees_all_and_filters_by_org(api, conn, alice, bob):
    from tests.integration.api.conftest import client_for
    from tests.support.tenants import make_tenant

    create(alice)
    create(bob)
    op = client_for(api, await make_tenant(conn, "staff", operator=True))
    assert len(op.http.get("/requests").json()["items"]) == 2
    only_bob = op.http.get("/requests", params={"org": "bob-org"}).json()["items"]
    assert [i["orgId"] for i in only_bob] == [str(bob.tenant.org_id)]


# -- platform -----------------------------------------------------------------------------------


async def test_queue_status_workers_types(db_url, alice):
    create(alice)
    create(alice, workerType="data")
    q = {i["workerType"]: i for i in alice.http.get("/queue").json()}
    assert q["general"]["pending"] == 1 and q["data"]["pending"] == 1 and q["general"]["oldestPendingAgeS"] >= 0
    st = alice.http.get("/status").json()
    assert st["api"] == "ok" and st["database"] == "ok"
    assert {w["workerType"]: (w["alive"], w["expected"]) for w in st["workers"]}["general"] == (0, 0)
    types = alice.http.get("/worker-types").json()
    assert {t["id"] for t in types} == {"general", "code-review", "playwright", "data"}
    general = next(t for t in types if t["id"] == "general")
    assert general["config"]["timeoutMs"] == 1800000
    assert alice.http.get("/workers").json() == []
    assert alice.http.get("/workers/nope/logs").status_code == 403  # members: never (test_tenancy.py)


def test_health_metrics_schema(api):
    assert httpx.get(f"{api.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{api.url}/health", params={"ready": 1}).json()["database"] == "ok"
    text = httpx.get(f"{api.url}/metrics").text
    assert 'eve_queue_depth{worker_type="general"} 0.0' in text
    schema = httpx.get(f"{api.url}/schema/openapi.json").json()
    for path in ("/auth/token", "/requests", "/requests/{request_id}", "/results/{request_id}",
                 "/requests/{request_id}/events", "/requests/{request_id}/cancel", "/requests/{request_id}/replay",
                 "/queue", "/workers", "/workers/{worker_id}/logs", "/worker-types", "/status", "/events/stream",
                 "/health", "/metrics"):
        assert path in schema["paths"], path
    assert "401" in schema["paths"]["/requests"]["post"]["responses"]


def test_secrets_never_in_logs_or_responses(api, alice):
    create(alice, prompt="hello")
    alice.http.get("/requests")
    out = api.output()
    assert alice.tenant.api_key not in out and alice.token not in out and api.jwt_secret not in out
    assert '"route": "/requests"' in out and '"status": 201' in out
    body = alice.http.get("/requests").text
    assert alice.tenant.api_key.split("_", 2)[2] not in body


# -- events ------------------------------------------------------------------------------------------


def sse_frames(resp: httpx.Response, until: int, deadline_s: float = 20) -> list[dict[str, Any]]:
    frames, cur = [], {}
    deadline = time.monotonic() + deadline_s
    for line in resp.iter_lines():
        if time.monotonic() > deadline:
            break
        if not line:
            if cur:
                frames.append(cur)
                cur = {}
                if len(frames) >= until or frames[-1].get("event") == "end":
                    break
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        cur[field] = value.lstrip(" ")
    return frames


async def test_request_events_sse_replays_streams_and_ends(db_url, alice):
    rid = create(alice).json()["id"]
    with alice.http.stream("GET", f"/requests/{rid}/events", headers={"Accept": "text/event-stream"}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        await work(db_url, Outcome(status="success", summary="done"))
        frames = sse_frames(resp, until=10)
    kinds = [json.loads(f["data"]).get("kind") for f in frames if f.get("event") == "request_event"]
    assert kinds == ["claimed", "tool_call", "result"]
    assert frames[-1]["event"] == "end"
    ids = [int(f["id"]) for f in frames if f.get("event") == "request_event"]
    # resume after the first event: the rest, then end at once (the request is finished)
    with alice.http.stream("GET", f"/requests/{rid}/events",
                           headers={"Accept": "text/event-stream", "Last-Event-ID": str(ids[0])}) as resp:
        again = sse_frames(resp, until=10)
    assert [int(f["id"]) for f in again if f.get("event") == "request_event"] == ids[1:]
    assert again[-1]["event"] == "end"
    assert [e["kind"] for e in alice.http.get(f"/requests/{rid}/events", params={"after": ids[1]}).json()] == [
        "result"]
