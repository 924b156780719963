"""Per-org limits at submission (#19): max pending → 429, requests per minute per API key →
429 with Retry-After, monthly budget → 402 with the month's spend; GET /orgs/current shows
the spend against the budget. Set through the operators' API, as an operator would."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from eve import admin, queue
from eve.models import Outcome
from tests.integration.api.conftest import Client, client_for
from tests.support.tenants import make_tenant

BODY = {"workerType": "general", "prompt": "work"}


async def _operator(api, conn) -> Client:
    return client_for(api, await make_tenant(conn, "staff", operator=True))


def _limit(op: Client, slug: str, **body: Any) -> None:
    r = op.http.put(f"/orgs/{slug}/limits", json=body)
    assert r.status_code == 200, r.text


async def test_max_pending_answers_429_with_the_limit(api, conn, alice, bob):
    _limit(await _operator(api, conn), "alice-org", maxPending=2)
    for _ in range(2):
        assert alice.http.post("/requests", json=BODY).status_code == 201
    r = alice.http.post("/requests", json=BODY)
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "too_many_requests"
    assert "at most 2 pending requests" in r.json()["message"]
    assert bob.http.post("/requests", json=BODY).status_code == 201  # other orgs unaffected
    # one claimed: room for one more
    await queue.claim(conn, "general", "w", limit=1)
    assert alice.http.post("/requests", json=BODY).status_code == 201


async def test_rate_per_minute_per_key_answers_429_with_retry_after(api, conn, alice):
    _limit(await _operator(api, conn), "alice-org", ratePerMinute=2)
    codes = [alice.http.post("/requests", json=BODY).status_code for _ in range(3)]
    r = alice.http.post("/requests", json=BODY)
    # a minute boundary may fall between the posts: at most two pass per window
    assert codes.count(201) >= 2 and (429 in codes or r.status_code == 429), codes
    limited = r if r.status_code == 429 else None
    if limited is None:
        limited = alice.http.post("/requests", json=BODY)
    assert limited.status_code == 429
    assert "2 requests per minute" in limited.json()["message"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # another key of the same org has its own count
    other = await admin.create_api_key(conn, "alice-org", alice.tenant.email, name="second")
    tok = httpx.post(f"{api.url}/auth/token", json={"apiKey": other.token}).json()["token"]
    r = httpx.post(f"{api.url}/requests", json=BODY, headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 201, r.text


async def _spend(db_url: str, org_id: Any, user_id: Any, usd: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        req = await queue.enqueue(c, org_id=org_id, user_id=user_id, worker_type="data", prompt="spent")
        [claimed] = await queue.claim(c, "data", "w")
        assert claimed.id == req.id
        await queue.complete(c, claimed, "w", Outcome(status="success", cost_usd=usd))


async def test_budget_answers_402_with_spend_and_budget_and_running_ones_finish(api, conn, db_url, alice):
    op = await _operator(api, conn)
    _limit(op, "alice-org", monthlyBudgetUsd=1.0)
    running = alice.http.post("/requests", json=BODY).json()["id"]
    [in_flight] = await queue.claim(conn, "general", "w")
    await _spend(db_url, alice.tenant.org_id, alice.tenant.user_id, "0.75")
    assert alice.http.post("/requests", json=BODY).status_code == 201  # 0.75 < 1.00
    await _spend(db_url, alice.tenant.org_id, alice.tenant.user_id, "0.75")
    r = alice.http.post("/requests", json=BODY)
    assert r.status_code == 402, r.text
    assert r.json()["error"] == "budget_exceeded"
    assert "$1.50 of the $1.00 budget" in r.json()["message"]
    cur = alice.http.get("/orgs/current").json()
    assert (cur["monthSpendUsd"], cur["monthlyBudgetUsd"], cur["budgetUsedFraction"]) == (1.5, 1.0, 1.5)
    # replay is a new request: refused too
    assert alice.http.post(f"/requests/{running}/replay").status_code == 402
    # what runs goes on and finishes (nothing is cancelled by the budget)
    assert alice.http.get(f"/requests/{running}").json()["status"] == "claimed"
    await queue.complete(conn, in_flight, "w", Outcome(status="success", cost_usd="0.10"))
    assert alice.http.get(f"/results/{running}").status_code == 200
    assert alice.http.get("/orgs/current").json()["monthSpendUsd"] == 1.6
    # the operator raises the budget: accepted again
    _limit(op, "alice-org", monthlyBudgetUsd=5)
    assert alice.http.post("/requests", json=BODY).status_code == 201


async def test_run_now_of_a_schedule_is_admitted_like_a_post(api, conn, alice):
    """A schedule must not be a way around the org's limits: "run now" answers 429 at the
    pending cap and 402 over the budget, with the same messages as POST /requests."""
    r = alice.http.post("/schedules", json={"name": "nightly", "cronExpression": "0 3 * * *",
                                            "workerType": "general", "prompt": "scheduled work"})
    assert r.status_code == 201, r.text
    op = await _operator(api, conn)
    _limit(op, "alice-org", maxPending=1)
    assert alice.http.post("/schedules/nightly/run").status_code == 201
    r = alice.http.post("/schedules/nightly/run")
    assert r.status_code == 429 and "at most 1 pending requests" in r.json()["message"], r.text
    _limit(op, "alice-org", maxPending=None, monthlyBudgetUsd=0)
    r = alice.http.post("/schedules/nightly/run")
    assert r.status_code == 402 and "monthly budget reached" in r.json()["message"], r.text
    n = await (await conn.execute("SELECT count(*) AS n FROM eve.orchestration_requests WHERE org_id = %s",
                                  (alice.tenant.org_id,))).fetchone()
    assert n["n"] == 1


async def test_an_operator_narrows_an_orgs_agent_limits_and_the_worker_reads_them(api, conn, alice):
    from eve import orgsecrets

    op = await _operator(api, conn)
    _limit(op, "alice-org", agentLimits={"memory_mb": 512, "max_minutes": 10})
    shown = alice.http.get("/orgs/current").json()
    assert shown["agentLimits"] == {"memory_mb": 512, "max_minutes": 10}, shown
    env = await orgsecrets.load_for_org(conn, None, alice.tenant.org_id)  # what the worker narrows with
    assert env.agent_limits == {"memory_mb": 512, "max_minutes": 10}
    for bad, text in (({"ram": 1}, "unknown limit 'ram'"), ({"memory_mb": -1}, "0 (no limit) or more")):
        r = op.http.put("/orgs/alice-org/limits", json={"agentLimits": bad})
        assert r.status_code == 400 and text in r.json()["message"], r.text
    r = alice.http.put("/orgs/alice-org/limits", json={"agentLimits": {"memory_mb": 99999}})
    assert r.status_code == 403  # an org cannot set its own
    _limit(op, "alice-org", agentLimits=None)
    assert alice.http.get("/orgs/current").json()["agentLimits"] == {}
