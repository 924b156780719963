"""What the operator console asks of the API (issue #18): search with a total, stats, workers
whose state comes from the claims, cancelled apart from failed, types with work and no worker,
worker log times, and draining a worker (the worker itself stops within a heartbeat)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg.rows import dict_row

from eve import workers
from tests.integration.api.conftest import client_for
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker


def create(c: Any, prompt: str, worker_type: str = "general") -> dict[str, Any]:
    r = c.http.post("/requests", json={"workerType": worker_type, "prompt": prompt})
    assert r.status_code == 201, r.text
    return r.json()


async def set_status(conn: Any, rid: str, status: str, *, started_s_ago: float = 30, took_s: float = 10,
                     worker: str | None = None) -> None:
    """Put a request in a state directly (as the service role): the API reads what the queue wrote
    (an in-flight request holds a lease, as every claim does)."""
    await conn.execute(
        "UPDATE eve.orchestration_requests SET status = %s, claimed_by = %s, claimed_at = now(),"
        " lease_expires_at = CASE WHEN %s IN ('claimed', 'processing') THEN now() + interval '1 minute' END,"
        " started_at = now() - make_interval(secs => %s),"
        " finished_at = CASE WHEN %s IN ('completed', 'failed', 'cancelled')"
        "                    THEN now() - make_interval(secs => %s) + make_interval(secs => %s) END"
        " WHERE id = %s", (status, worker, status, started_s_ago, status, started_s_ago, took_s, rid))


async def test_search_total_is_exact_when_small_and_capped_over_a_long_history(api, conn, alice, bob):
    """Counting every match of a search over a long history cost more than the page: the total is
    counted up to COUNT_CAP and then said to be at least that (totalCapped)."""
    from eve.daemons.api.routes import COUNT_CAP

    t = alice.tenant
    await conn.execute(
        "INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, status, prompt, created_at)"
        " SELECT %s, %s, 'general', CASE WHEN i < 3 THEN 'failed' ELSE 'completed' END, 'history ' || i,"
        "        now() - make_interval(secs => i)"
        " FROM generate_series(0, %s) AS i", (t.org_id, t.user_id, COUNT_CAP + 5))
    page = alice.http.get("/requests", params={"limit": 5}).json()
    assert page["total"] == COUNT_CAP and page["totalCapped"] is True and len(page["items"]) == 5
    later = alice.http.get("/requests", params={"limit": 5, "cursor": page["nextCursor"]}).json()
    assert later["total"] == COUNT_CAP and later["totalCapped"] is True  # counted from the start, not the cursor
    failed = alice.http.get("/requests", params={"status": "failed"}).json()
    assert failed["total"] == 3 and failed["totalCapped"] is False and len(failed["items"]) == 3
    few = alice.http.get("/requests", params={"status": "failed", "limit": 2}).json()
    assert few["total"] == 3 and few["totalCapped"] is False and few["nextCursor"]
    assert bob.http.get("/requests").json() == {"items": [], "nextCursor": None, "total": 0, "totalCapped": False}


async def test_search_filters_counts_and_pages(api, conn, alice, bob):
    made = [create(alice, f"fix bug 100% in module {i}" if i % 3 == 0 else f"write docs {i}") for i in range(12)]
    create(bob, "fix bug 100% in bob's module")
    for r in made[:4]:
        await set_status(conn, r["id"], "failed")
    await set_status(conn, made[4]["id"], "cancelled")
    page = alice.http.get("/requests", params={"limit": 5}).json()
    assert page["total"] == 12 and len(page["items"]) == 5 and page["nextCursor"]
    assert page["items"][0]["orgSlug"] == "alice-org"
    found = alice.http.get("/requests", params={"q": "100%"}).json()  # % is literal, not a wildcard
    assert found["total"] == 4 and all("100%" in r["prompt"] for r in found["items"])
    both = alice.http.get("/requests", params={"status": "failed,cancelled"}).json()
    assert both["total"] == 5 and {r["status"] for r in both["items"]} == {"failed", "cancelled"}
    by_id = alice.http.get("/requests", params={"q": made[7]["id"][:8]}).json()
    assert [r["id"] for r in by_id["items"]] == [made[7]["id"]]
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert alice.http.get("/requests", params={"since": future}).json()["total"] == 0
    assert alice.http.get("/requests", params={"until": future}).json()["total"] == 12
    oldest, seen, cursor = [], 0, None
    while True:
        p = alice.http.get("/requests", params={"sort": "oldest", "limit": 5, **({"cursor": cursor} if cursor else {})})
        body = p.json()
        oldest += [r["id"] for r in body["items"]]
        seen += 1
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert oldest == [r["id"] for r in made] and seen == 3
    bad = alice.http.get("/requests", params={"status": "broken"})
    assert bad.status_code == 400 and "broken" in bad.json()["message"]
    assert bob.http.get("/requests", params={"q": "module"}).json()["total"] == 1  # RLS: only bob's own


async def test_queue_counts_cancelled_apart_and_says_when_no_worker_is_alive(api, conn, alice):
    a, b, c = create(alice, "a"), create(alice, "b"), create(alice, "c", worker_type="data")
    await set_status(conn, a["id"], "failed")
    await set_status(conn, b["id"], "cancelled")
    rows = {q["workerType"]: q for q in alice.http.get("/queue").json()}
    assert (rows["general"]["failedLastHour"], rows["general"]["cancelledLastHour"]) == (1, 1)
    assert rows["data"]["pending"] == 1 and rows["data"]["workersAlive"] == 0
    await workers.register(conn, worker_id="w-data", worker_type="data", hostname="h", pid=1, version="t", slots=1)
    rows = {q["workerType"]: q for q in alice.http.get("/queue").json()}
    assert rows["data"]["workersAlive"] == 1 and c["status"] == "pending"


async def test_workers_state_comes_from_the_claims_not_the_heartbeat_row(api, conn, alice):
    await workers.register(conn, worker_id="w1", worker_type="general", hostname="h", pid=1, version="t", slots=1)
    r = create(alice, "run me")
    await set_status(conn, r["id"], "processing", worker="w1")
    [w] = alice.http.get("/workers").json()  # the row still says idle: its next heartbeat is up to 20 s away
    assert (w["state"], w["currentRequestId"], w["slotsBusy"]) == ("busy", r["id"], 1)
    await workers.heartbeat(conn, "w1", state="busy", current_request_id=r["id"])
    await set_status(conn, r["id"], "failed", worker="w1")
    [w] = alice.http.get("/workers").json()  # the row still says busy on a request that just failed
    assert (w["state"], w["currentRequestId"], w["slotsBusy"]) == ("idle", None, 0)


async def test_workers_show_their_sandbox_and_their_agents_network(api, conn, alice):
    await workers.register(conn, worker_id="w-old", worker_type="general", hostname="h", pid=1, version="t", slots=1)
    await workers.register(conn, worker_id="w-box", worker_type="general", hostname="h", pid=2, version="t", slots=1,
                           sandbox="bwrap", network="filtered")
    rows = {w["id"]: w for w in alice.http.get("/workers").json()}
    assert (rows["w-old"]["sandbox"], rows["w-old"]["network"]) == ("none", "open")
    assert (rows["w-box"]["sandbox"], rows["w-box"]["network"]) == ("bwrap", "filtered")
    await workers.register(conn, worker_id="w-box", worker_type="general", hostname="h", pid=3, version="t", slots=1,
                           sandbox="uid", network="open")  # restarted elsewhere: the row says what runs now
    [w] = [w for w in alice.http.get("/workers").json() if w["id"] == "w-box"]
    assert (w["sandbox"], w["network"]) == ("uid", "open")


async def test_stats_per_window_type_and_org(api, conn, alice):
    rs = [create(alice, f"job {i}") for i in range(4)]
    for r, (status, took) in zip(rs, [("completed", 10), ("completed", 20), ("failed", 30), ("cancelled", 1)]):
        await set_status(conn, r["id"], status, took_s=took)
    create(alice, "still pending")
    s = alice.http.get("/stats", params={"window": "1h"}).json()
    t = s["totals"]
    assert (t["completed"], t["failed"], t["cancelled"]) == (2, 1, 1)
    assert 9_000 <= t["p50Ms"] <= 21_000 and t["p95Ms"] >= 25_000
    assert t["jobsPerMin"] == round(4 / 60, 3)
    assert [x["workerType"] for x in s["byType"]] == ["general"] and s["byOrg"][0]["org"] == "alice-org"
    assert alice.http.get("/stats", params={"window": "2y"}).status_code == 400


async def test_replay_with_an_edited_prompt(api, alice):
    r = create(alice, "first try")
    new = alice.http.post(f"/requests/{r['id']}/replay", json={"prompt": "second try"}).json()
    assert new["prompt"] == "second try" and new["replayOf"] == r["id"]
    assert alice.http.post(f"/requests/{r['id']}/replay", json={"prompt": " "}).status_code == 400
    assert alice.http.post(f"/requests/{r['id']}/replay").json()["prompt"] == "first try"


async def test_worker_log_lines_keep_the_time_they_were_logged(api, conn):
    staff = client_for(api, await make_tenant(conn, "staff", operator=True))  # worker logs: operators only
    await workers.register(conn, worker_id="w2", worker_type="general", hostname="h", pid=1, version="t", slots=1)
    at = datetime.now(timezone.utc) - timedelta(seconds=16)
    await workers.write_logs(conn, "w2", [("info", "request x claimed", {"request_id": "x"}, at)])
    [line] = staff.http.get("/workers/w2/logs").json()
    logged = datetime.fromisoformat(line["at"].replace("Z", "+00:00"))
    assert abs((logged - at).total_seconds()) < 0.01 and line["data"]["request_id"] == "x"


async def test_drain_is_for_operators_and_the_worker_stops_within_a_heartbeat(api, conn, db_url, tmp_path, alice):
    staff = client_for(api, await make_tenant(conn, "staff", operator=True))
    worker = start_worker(db_url, tmp_path, worker_type="data", env={"EVE_LEASE_SECONDS": "3"})
    try:
        health = worker.wait_healthy()
        wid = health["worker_id"]
        wait_for(lambda: any(w["id"] == wid for w in staff.http.get("/workers").json()), 10, "the worker's row")
        assert alice.http.post(f"/workers/{wid}/drain").status_code == 403
        assert staff.http.post("/workers/nope/drain").status_code == 404
        r = staff.http.post(f"/workers/{wid}/drain")
        assert r.status_code == 202 and r.json()["drainRequestedAt"]
        [w] = [w for w in staff.http.get("/workers").json() if w["id"] == wid]
        assert w["state"] == "draining"
        worker.proc.wait(timeout=15)  # heartbeat every 1 s with a 3 s lease
        assert worker.proc.returncode == 0
        assert "drain requested by an operator" in worker.output()
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as c:
            row = await (await c.execute("SELECT state FROM eve.workers WHERE id = %s", (wid,))).fetchone()
        assert row["state"] == "stopped"
        # it claimed nothing after the drain: work of its type stays pending
        create(alice, "after the drain", worker_type="data")
        assert alice.http.get("/requests", params={"status": "pending", "workerType": "data"}).json()["total"] == 1
    finally:
        worker.stop()
