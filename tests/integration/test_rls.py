"""Row-level security in raw SQL, as the API's role: the safety net holds on its own.

Each statement runs as `eve_api` with `eve.user_id` set locally, exactly as the API
does per transaction; no application code filters anything here.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import admin, queue
from eve.models import Outcome
from tests.support.tenants import Tenant, make_tenant


@pytest.fixture
async def two_orgs(conn: psycopg.AsyncConnection[Any]) -> tuple[Tenant, Tenant, dict[str, Any]]:
    a = await make_tenant(conn, "org-a")
    b = await make_tenant(conn, "org-b")
    req_b = await queue.enqueue(conn, org_id=b.org_id, user_id=b.user_id, worker_type="general", prompt="B's secret")
    [claimed] = await queue.claim(conn, "general", "w1")
    await queue.append_events(conn, req_b.id, b.org_id, [("text", {"text": "B's event"})])
    await queue.complete(conn, claimed, "w1", Outcome(status="success", summary="B's result"))
    await queue.enqueue(conn, org_id=a.org_id, user_id=a.user_id, worker_type="general", prompt="A's own")
    return a, b, {"request_id": req_b.id}


async def _as(db_url: str, user_id: Any, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as c:
        async with c.transaction():
            await c.execute("SET LOCAL ROLE eve_api")
            await c.execute("SELECT set_config('eve.user_id', %s, true)", (str(user_id) if user_id else "",))
            cur = await c.execute(sql, params)
            return await cur.fetchall() if cur.description else []


async def test_user_a_cannot_see_org_b_rows(db_url, two_orgs):
    a, b, ids = two_orgs
    reqs = await _as(db_url, a.user_id, "SELECT prompt, org_id FROM eve.orchestration_requests")
    assert [r["prompt"] for r in reqs] == ["A's own"]
    assert await _as(db_url, a.user_id, "SELECT * FROM eve.orchestration_results") == []
    assert await _as(db_url, a.user_id, "SELECT * FROM eve.request_events") == []
    assert await _as(db_url, a.user_id, "SELECT * FROM eve.orchestration_requests WHERE id = %s",
                     (ids["request_id"],)) == []
    orgs = await _as(db_url, a.user_id, "SELECT slug FROM eve.organizations")
    assert [o["slug"] for o in orgs] == ["org-a"]
    keys = await _as(db_url, a.user_id, "SELECT user_id FROM eve.api_keys")
    assert {k["user_id"] for k in keys} == {a.user_id}


async def test_user_b_sees_their_own(db_url, two_orgs):
    a, b, ids = two_orgs
    assert len(await _as(db_url, b.user_id, "SELECT * FROM eve.orchestration_results")) == 1
    kinds = {e["kind"] for e in await _as(db_url, b.user_id, "SELECT kind FROM eve.request_events")}
    assert {"claimed", "text", "result"} <= kinds


async def test_no_user_set_sees_nothing(db_url, two_orgs):
    assert await _as(db_url, None, "SELECT * FROM eve.orchestration_requests") == []
    assert await _as(db_url, None, "SELECT * FROM eve.organizations") == []


async def test_insert_into_another_org_is_refused(db_url, two_orgs):
    a, b, _ = two_orgs
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        await _as(db_url, a.user_id,
                  "INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt) "
                  "VALUES (%s, %s, 'general', 'sneaky')", (b.org_id, a.user_id))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await _as(db_url, a.user_id,
                  "INSERT INTO eve.request_events (request_id, org_id, kind) VALUES (%s, %s, 'text')",
                  (two_orgs[2]["request_id"], b.org_id))


async def test_update_of_another_orgs_request_touches_nothing(db_url, two_orgs, conn):
    a, b, ids = two_orgs
    await _as(db_url, a.user_id, "UPDATE eve.orchestration_requests SET prompt = 'hijacked'")
    cur = await conn.execute("SELECT prompt FROM eve.orchestration_requests WHERE id = %s", (ids["request_id"],))
    assert (await cur.fetchone())["prompt"] == "B's secret"


async def test_operator_sees_every_org(db_url, conn, two_orgs):
    op = await make_tenant(conn, "staff", operator=True)
    prompts = {r["prompt"] for r in await _as(db_url, op.user_id, "SELECT prompt FROM eve.orchestration_requests")}
    assert prompts == {"A's own", "B's secret"}


async def test_api_role_cannot_read_key_hashes_of_others_or_bypass(db_url, two_orgs, conn):
    a, b, _ = two_orgs
    cur = await conn.execute("SELECT user_id, secret_hash FROM eve.api_keys")
    hashes = {r["user_id"]: r["secret_hash"] for r in await cur.fetchall()}
    assert len(hashes) == 2 and all(h.startswith("sha256$") for h in hashes.values())
    seen = await _as(db_url, a.user_id, "SELECT user_id, secret_hash FROM eve.api_keys")
    assert [r["user_id"] for r in seen] == [a.user_id]
    assert hashes[b.user_id] not in {r["secret_hash"] for r in seen}
    assert await _as(db_url, None, "SELECT secret_hash FROM eve.api_keys") == []
    # the definer lookup is the only way in, and only with the public prefix
    rows = await _as(db_url, a.user_id, "SELECT rolbypassrls FROM pg_roles WHERE rolname = 'eve_api'")
    assert rows == [{"rolbypassrls": False}]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await _as(db_url, a.user_id, "DELETE FROM eve.orchestration_requests")


async def test_users_and_memberships_of_another_org_are_invisible(db_url, two_orgs, conn):
    a, b, _ = two_orgs
    users = await _as(db_url, a.user_id, "SELECT id, email FROM eve.users")
    assert [u["email"] for u in users] == [a.email]
    members = await _as(db_url, a.user_id, "SELECT org_id, user_id FROM eve.org_members")
    assert [(m["org_id"], m["user_id"]) for m in members] == [(a.org_id, a.user_id)]
    assert await _as(db_url, None, "SELECT * FROM eve.users") == []
    assert await _as(db_url, None, "SELECT * FROM eve.org_members") == []
    # a shared org makes its members visible to each other, and nothing more
    await admin.add_member(conn, a.slug, b.email, "member")
    emails = {u["email"] for u in await _as(db_url, a.user_id, "SELECT email FROM eve.users")}
    assert emails == {a.email, b.email}
    orgs_b_sees = {m["org_id"] for m in await _as(db_url, b.user_id, "SELECT org_id FROM eve.org_members")}
    assert orgs_b_sees == {a.org_id, b.org_id}
    orgs_a_sees = {m["org_id"] for m in await _as(db_url, a.user_id, "SELECT org_id FROM eve.org_members")}
    assert orgs_a_sees == {a.org_id}
    # the API role writes neither table
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await _as(db_url, a.user_id, "UPDATE eve.users SET is_operator = true WHERE id = %s", (a.user_id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await _as(db_url, a.user_id, "INSERT INTO eve.org_members (org_id, user_id) VALUES (%s, %s)",
                  (b.org_id, a.user_id))


async def test_results_of_another_org_cannot_be_written(db_url, two_orgs, conn):
    a, b, ids = two_orgs
    pending_b = await queue.enqueue(conn, org_id=b.org_id, user_id=b.user_id, worker_type="general", prompt="B2")
    insert = ("INSERT INTO eve.orchestration_results (request_id, org_id, status, summary) "
              "VALUES (%s, %s, 'success', 'forged')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        await _as(db_url, a.user_id, insert, (pending_b.id, b.org_id))
    # labelled with A's own org, for B's request: still refused
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        await _as(db_url, a.user_id, insert, (pending_b.id, a.org_id))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        await _as(db_url, a.user_id, "INSERT INTO eve.request_events (request_id, org_id, kind) "
                  "VALUES (%s, %s, 'text')", (pending_b.id, a.org_id))
    await _as(db_url, a.user_id, "UPDATE eve.orchestration_results SET summary = 'hijacked', status = 'failed'")
    cur = await conn.execute("SELECT status, summary FROM eve.orchestration_results WHERE request_id = %s",
                             (ids["request_id"],))
    assert await cur.fetchone() == {"status": "success", "summary": "B's result"}
    cur = await conn.execute("SELECT count(*) AS n FROM eve.orchestration_results WHERE request_id = %s",
                             (pending_b.id,))
    assert (await cur.fetchone())["n"] == 0
