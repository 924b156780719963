"""Least privilege in the database: the API's and the workers' login roles (eve.roles).

`eve up` makes these roles with the superuser DSN and hands each process only its own DSN;
these tests check, against the real server, what each role can and cannot do, and that
the API and a worker do their jobs with nothing more.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from uuid import UUID

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from eve import queue, roles
from eve.db import API_ROLE, SERVICE_ROLE, as_service, make_pool
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.waiting import async_wait_for


def _role_names() -> tuple[str, str]:
    # roles are cluster-wide: per-test names keep parallel sessions apart
    tag = f"{os.getpid()}_{os.urandom(3).hex()}"
    return f"eve_api_t{tag}", f"eve_worker_t{tag}"


@pytest.fixture
async def split(db_url: str, tmp_path: Path):
    api_name, worker_name = _role_names()
    api = roles.LoginRole(api_name, API_ROLE, roles.load_or_create_password(tmp_path, api_name))
    worker = roles.LoginRole(worker_name, SERVICE_ROLE, roles.load_or_create_password(tmp_path, worker_name))
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await roles.ensure_login_roles(conn, [api, worker])
    yield {"api": roles.dsn_for(db_url, api), "worker": roles.dsn_for(db_url, worker), "api_role": api,
           "worker_role": worker}
    with psycopg.connect(db_url, autocommit=True) as conn:
        for name in (api_name, worker_name):
            conn.execute(psycopg.sql.SQL("DROP OWNED BY {} CASCADE").format(psycopg.sql.Identifier(name)))
            conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(name)))


def test_passwords_are_generated_once_and_kept_0600(tmp_path: Path):
    first = roles.load_or_create_password(tmp_path, "eve_api_login")
    assert len(first) >= 32 and roles.load_or_create_password(tmp_path, "eve_api_login") == first
    path = roles.secret_file(tmp_path, "eve_api_login")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_roles_are_members_of_their_group_only_and_hold_no_attributes(split, db_url):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for role, group in ((split["api_role"], API_ROLE), (split["worker_role"], SERVICE_ROLE)):
            attrs = await (await conn.execute(
                "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolreplication, rolcanlogin "
                "FROM pg_roles WHERE rolname = %s", (role.name,))).fetchone()
            assert attrs == (False, False, False, False, False, True)
            groups = await (await conn.execute(
                "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
                "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s", (role.name,))).fetchall()
            assert [g[0] for g in groups] == [group]
        # widened by hand, then repaired by the next ensure (what every `eve up` start does)
        api = split["api_role"]
        await conn.execute(psycopg.sql.SQL("GRANT service_role TO {}").format(psycopg.sql.Identifier(api.name)))
        await roles.ensure_login_roles(conn, [api])
        groups = await (await conn.execute(
            "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s", (api.name,))).fetchall()
        assert [g[0] for g in groups] == [API_ROLE]


@pytest.mark.parametrize("statement", [
    "CREATE TABLE eve.sneaky (x int)", "CREATE TABLE public.sneaky (x int)", "CREATE SCHEMA sneaky",
    "CREATE ROLE sneaky", "CREATE DATABASE sneaky", "ALTER TABLE eve.orchestration_requests DISABLE ROW LEVEL SECURITY",
])
@pytest.mark.parametrize("who", ["api", "worker"])
def test_neither_role_can_create_or_alter_anything(split, who, statement):
    with psycopg.connect(split[who], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


async def test_the_api_role_cannot_become_the_service_role_or_see_tenant_rows(split, db_url):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as su:
        await make_tenant(su, "lp-org")
    with psycopg.connect(split["api"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE service_role")
        with conn.transaction():
            conn.execute("SET LOCAL ROLE eve_api")
            assert conn.execute("SELECT count(*) FROM eve.organizations").fetchone()[0] == 0
        # no identity set: RLS shows no rows even without SET ROLE
        assert conn.execute("SELECT count(*) FROM eve.api_keys").fetchone()[0] == 0
    with psycopg.connect(split["worker"], autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL ROLE service_role")
        assert conn.execute("SELECT count(*) FROM eve.organizations").fetchone()[0] >= 1


async def test_api_serves_tokens_requests_queue_status_and_sse_on_its_role(split, db_url, tmp_path):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as su:
        tenant = await make_tenant(su, "lp-api")
    api = start_api(split["api"], tmp_path)
    try:
        api.wait_ready()
        tok = httpx.post(f"{api.url}/auth/token", json={"apiKey": tenant.api_key}).json()["token"]
        http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {tok}"}, timeout=30)
        created = http.post("/requests", json={"workerType": "general", "prompt": "hi"})
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        assert http.get(f"/requests/{rid}").status_code == 200
        depth = {d["workerType"]: d for d in http.get("/queue").json()}
        assert depth["general"]["pending"] == 1
        status = http.get("/status")
        assert status.status_code == 200 and status.json()["database"] == "ok", status.text + api.output()[-3000:]
        # live SSE: an event written by a worker (service role) reaches the stream
        with http.stream("GET", f"/requests/{rid}/events", headers={"Accept": "text/event-stream"},
                         timeout=30) as resp:
            assert resp.status_code == 200
            pool = make_pool(split["worker"], min_size=1, max_size=2)
            await pool.open(wait=True)
            try:
                async with as_service(pool) as conn:
                    await queue.append_events(conn, UUID(rid), tenant.org_id, [("log", {"text": "from-the-worker"})])
            finally:
                await pool.close()
            seen = ""
            for chunk in resp.iter_text():
                seen += chunk
                if "from-the-worker" in seen:
                    break
        assert "from-the-worker" in seen
        assert "Traceback" not in api.output()
    finally:
        api.stop()


async def test_worker_role_claims_runs_and_completes(split, db_url):
    """The queue's worker side end to end on the worker role: claim, lease, events, result."""
    from eve.models import Outcome

    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row) as su:
        tenant = await make_tenant(su, "lp-worker")
        req = await queue.enqueue(su, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt="hello")
    pool = make_pool(split["worker"], min_size=1, max_size=2)
    await pool.open(wait=True)
    try:
        async with as_service(pool) as conn:
            claimed = await queue.claim(conn, "general", "lp-w1", limit=1)
        assert [c.id for c in claimed] == [req.id]
        async with as_service(pool) as conn:
            await queue.mark_processing(conn, req.id, "lp-w1")
        async with as_service(pool) as conn:
            await queue.renew_leases(conn, "lp-w1", [req.id])
            await queue.append_events(conn, req.id, req.org_id, [("log", {"text": "x"})])
        async with as_service(pool) as conn:
            await queue.complete(conn, claimed[0], "lp-w1", Outcome(status="success", output={"text": "ok"}))
        async with as_service(pool) as conn:
            await queue.reap(conn)

        async def done() -> bool:
            async with as_service(pool) as conn:
                r = await queue.get_request(conn, req.id)
                return r is not None and r.status == "completed"

        await async_wait_for(done, 10, "the request to be completed")
    finally:
        await pool.close()
