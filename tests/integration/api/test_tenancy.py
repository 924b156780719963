"""What one org's member sees of the platform views: workers, worker logs, the queue.

The rules (docs/api.md, "Who sees what"): operators see everything; a member sees every
worker but a running request's id only when the request is in one of the member's
orgs; worker logs are for operators only (they name any org's requests); queue counts
are the member's own orgs' requests. Each rule is held by the database (a view and
row-level security), not only by the route.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from eve import queue, workers
from tests.integration.api.conftest import Client, client_for
from tests.support.tenants import make_tenant


async def _busy_worker(db_url: str, request_id: Any) -> str:
    """A registered worker that is running `request_id` and has logged about it, as a worker does."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        await workers.register(c, worker_id="w-busy", worker_type="general", hostname="h", pid=1, version="t",
                               slots=1)
        await workers.heartbeat(c, "w-busy", state="busy", current_request_id=request_id)
        await workers.write_logs(c, "w-busy", [("info", "cancel requested; stopping the agent",
                                                {"request_id": str(request_id)})])
    return "w-busy"


async def _running(db_url: str, who: Client) -> str:
    rid = who.http.post("/requests", json={"workerType": "general", "prompt": "secret work"}).json()["id"]
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        [req] = await queue.claim(c, "general", "w-busy")
    assert str(req.id) == rid
    return rid


async def test_workers_show_a_running_request_id_only_to_its_org_and_operators(api, conn, db_url, alice, bob):
    rid = await _running(db_url, bob)
    await _busy_worker(db_url, rid)
    op = client_for(api, await make_tenant(conn, "staff", operator=True))

    def current(c: Client) -> list[tuple[str, Any, int]]:
        r = c.http.get("/workers")
        assert r.status_code == 200, r.text
        return [(w["id"], w["currentRequestId"], w["slotsBusy"]) for w in r.json()]

    assert current(bob) == [("w-busy", rid, 1)]
    assert current(op) == [("w-busy", rid, 1)]
    assert current(alice) == [("w-busy", None, 1)]  # the worker is visible, whose work it does is not


async def test_worker_logs_are_for_operators(api, conn, db_url, alice, bob):
    rid = await _running(db_url, bob)
    wid = await _busy_worker(db_url, rid)
    op = client_for(api, await make_tenant(conn, "staff", operator=True))
    lines = op.http.get(f"/workers/{wid}/logs").json()
    assert [ln["data"] for ln in lines] == [{"request_id": rid}]
    assert op.http.get("/workers/nope/logs").status_code == 404
    for member in (alice, bob):
        r = member.http.get(f"/workers/{wid}/logs")
        assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
        assert rid not in r.text


async def test_worker_logs_are_hidden_by_the_database_too(db_url, alice, bob):
    """Row-level security on eve.worker_logs, as the API's role, without the route's check."""
    rid = await _running(db_url, bob)
    await _busy_worker(db_url, rid)
    async with await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as c, c.transaction():
        await c.execute("SET LOCAL ROLE eve_api")
        await c.execute("SELECT set_config('eve.user_id', %s, true)", (str(alice.tenant.user_id),))
        assert await (await c.execute("SELECT * FROM eve.worker_logs")).fetchall() == []
        try:
            await c.execute("SELECT current_request_id FROM eve.workers")
            raise AssertionError("eve_api can read eve.workers.current_request_id directly")
        except psycopg.errors.InsufficientPrivilege:
            pass


async def test_queue_counts_only_the_callers_orgs(api, conn, db_url, alice, bob):
    for _ in range(3):
        bob.http.post("/requests", json={"workerType": "general", "prompt": "b"})
    alice.http.post("/requests", json={"workerType": "general", "prompt": "a"})
    op = client_for(api, await make_tenant(conn, "staff", operator=True))

    def pending(c: Client, path: str = "/queue") -> int:
        body = c.http.get(path).json()
        items = body if path == "/queue" else body["queue"]
        return next(i["pending"] for i in items if i["workerType"] == "general")

    assert (pending(alice), pending(bob), pending(op)) == (1, 3, 4)
    assert (pending(alice, "/status"), pending(bob, "/status"), pending(op, "/status")) == (1, 3, 4)
