"""Threat: one tenant reads or writes another's rows. Row-level security is the net under
every API query, so it is tested on its own, in raw SQL as the API's role (`eve_api`, with
`eve.user_id` set as the API sets it), and symmetrically: both orgs get the same rows in
every tenant table, and each must neither see nor change nor add to the other's — A→B and
B→A, because a policy can be right one way only (say, a condition on one org's data).

The tables are read from the catalog, not listed by hand: every table of schema `eve` with
an `org_id` column must have RLS enabled and forced, and must have fixture rows here (a new
tenant table fails this test until it is covered).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from eve import queue
from tests.support.tenants import Tenant, make_tenant

TENANT_TABLES_SQL = """
SELECT c.relname AS name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'eve' AND c.relkind IN ('r', 'p')
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'org_id' AND NOT a.attisdropped)
ORDER BY 1
"""


async def _fixture_rows(conn: Any, t: Tenant) -> None:
    """One row (at least) of `t`'s in every tenant table, written as the superuser."""
    tag = t.slug.upper().replace("-", "")
    req = await queue.enqueue(conn, org_id=t.org_id, user_id=t.user_id, worker_type="general",
                              prompt=f"{t.slug}'s pending secret")
    done = await queue.enqueue(conn, org_id=t.org_id, user_id=t.user_id, worker_type="general",
                               prompt=f"{t.slug}'s finished secret")
    later = await queue.enqueue(conn, org_id=t.org_id, user_id=t.user_id, worker_type="general",
                                prompt=f"{t.slug}'s continuation")
    await conn.execute("UPDATE eve.orchestration_requests SET status = 'completed', finished_at = now() "
                       "WHERE id = %s", (done.id,))
    key = (await (await conn.execute("SELECT id FROM eve.api_keys WHERE org_id = %s", (t.org_id,))).fetchone())["id"]
    statements: list[tuple[str, tuple[Any, ...]]] = [
        ("INSERT INTO eve.orchestration_results (request_id, org_id, status, summary) VALUES (%s, %s, 'success', %s)",
         (done.id, t.org_id, f"{t.slug}'s result")),
        ("INSERT INTO eve.request_events (request_id, org_id, kind, data) VALUES (%s, %s, 'text', %s)",
         (done.id, t.org_id, Jsonb({"text": f"{t.slug}'s event"}))),
        ("INSERT INTO eve.request_waits (request_id, org_id, kind, ref_id) VALUES (%s, %s, 'child', %s)",
         (req.id, t.org_id, later.id)),
        ("INSERT INTO eve.request_sessions (request_id, org_id, session_id, transcript) VALUES (%s, %s, 's', %s)",
         (req.id, t.org_id, f"{t.slug}'s transcript".encode())),
        ("INSERT INTO eve.request_tokens (request_id, org_id, attempt, prefix, secret_hash) "
         "VALUES (%s, %s, 1, %s, 'sha256$x')", (req.id, t.org_id, f"rt_{tag}")),
        ("INSERT INTO eve.request_continuations (request_id, org_id, continues) VALUES (%s, %s, %s)",
         (later.id, t.org_id, done.id)),
        ("INSERT INTO eve.hitl_requests (request_id, org_id, question) VALUES (%s, %s, %s)",
         (req.id, t.org_id, f"{t.slug}'s question?")),
        ("INSERT INTO eve.org_limits (org_id, max_pending) VALUES (%s, 50) ON CONFLICT (org_id) DO NOTHING",
         (t.org_id,)),
        ("INSERT INTO eve.org_secrets (org_id, name, ciphertext) VALUES (%s, 'ORG_TOKEN', %s)",
         (t.org_id, f"{t.slug}'s ciphertext".encode())),
        ("INSERT INTO eve.audit_log (org_id, action, target) VALUES (%s, 'test.fixture', %s)", (t.org_id, t.slug)),
        ("INSERT INTO eve.api_key_rate (key_id, org_id, window_start, n) VALUES (%s, %s, now(), 1)", (key, t.org_id)),
    ]
    for sql, params in statements:
        await conn.execute(sql, params)
    sched = (await (await conn.execute(
        "INSERT INTO eve.schedules (org_id, user_id, name, cron_expression, request_template, worker_type) "
        "VALUES (%s, %s, 'nightly', '0 3 * * *', %s, 'general') RETURNING id",
        (t.org_id, t.user_id, Jsonb({"prompt": f"{t.slug}'s schedule"})))).fetchone())["id"]
    await conn.execute("INSERT INTO eve.schedule_fires (schedule_id, fire_at, org_id, outcome, request_id) "
                       "VALUES (%s, now(), %s, 'fired', %s)", (sched, t.org_id, done.id))
    inst = (await (await conn.execute("INSERT INTO eve.slack_installations (org_id, team_id) VALUES (%s, %s) "
                                      "RETURNING id", (t.org_id, f"T{tag}"))).fetchone())["id"]
    await conn.execute("INSERT INTO eve.slack_secrets (installation_id, org_id, bot_token, signing_secret) "
                       "VALUES (%s, %s, %s, %s)", (inst, t.org_id, b"bot", b"signing"))
    await conn.execute("INSERT INTO eve.slack_threads (request_id, installation_id, org_id, channel) "
                       "VALUES (%s, %s, %s, 'C1')", (done.id, inst, t.org_id))
    await conn.execute("INSERT INTO eve.slack_user_links (installation_id, slack_user_id, org_id, user_id) "
                       "VALUES (%s, %s, %s, %s)", (inst, f"U{tag}", t.org_id, t.user_id))
    await conn.execute("INSERT INTO eve.idempotency_keys (org_id, key, route, body_hash, status, response) "
                       "VALUES (%s, %s, 'POST /requests', %s, 201, '{}')", (t.org_id, f"key-{tag}", b"h"))
    hook = (await (await conn.execute("INSERT INTO eve.webhook_endpoints (org_id, url, events, secret) "
                                      "VALUES (%s, %s, ARRAY['request.completed'], %s) RETURNING id",
                                      (t.org_id, f"https://{t.slug}.example/hook", b"ciphertext"))).fetchone())["id"]
    await conn.execute("INSERT INTO eve.webhook_deliveries (endpoint_id, org_id, message_id, event, payload) "
                       "VALUES (%s, %s, %s, 'request.completed', '{}')", (hook, t.org_id, f"msg_{tag}"))


@pytest.fixture
async def orgs(conn) -> tuple[Tenant, Tenant]:
    a, b = await make_tenant(conn, "org-a"), await make_tenant(conn, "org-b")
    for t in (a, b):
        await _fixture_rows(conn, t)
    return a, b


async def _as(db_url: str, user_id: UUID, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[dict], int]:
    """(rows, rowcount) of one statement as eve_api for `user_id`, in its own transaction."""
    async with await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as c:
        async with c.transaction():
            await c.execute("SELECT set_config('role', 'eve_api', true), set_config('eve.user_id', %s, true)",
                            (str(user_id),))
            cur = await c.execute(sql, params)
            return (await cur.fetchall() if cur.description else []), cur.rowcount


async def _refused_or(db_url: str, user_id: UUID, sql: str, params: tuple[Any, ...] = ()) -> tuple[list, int] | None:
    """The statement's outcome, or None when the API role may not run it at all (no grant, or a
    WITH CHECK that refuses the row): both mean "cannot"."""
    try:
        return await _as(db_url, user_id, sql, params)
    except psycopg.errors.InsufficientPrivilege:
        return None


async def _privileged_columns(conn: Any, table: str, privilege: str) -> list[str]:
    cur = await conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "AND has_column_privilege('eve_api', attrelid, attnum, %s) ORDER BY attnum", (f"eve.{table}", privilege))
    return [r["attname"] for r in await cur.fetchall()]


async def _rows_of(conn: Any, table: str, org_id: UUID) -> list[dict[str, Any]]:
    cur = await conn.execute(f"SELECT to_jsonb(t) AS j FROM eve.{table} t WHERE org_id = %s ORDER BY 1",  # noqa: S608
                             (org_id,))
    return [r["j"] for r in await cur.fetchall()]


async def test_every_tenant_table_has_rls_enabled_and_forced(conn):
    tables = await (await conn.execute(TENANT_TABLES_SQL)).fetchall()
    assert len(tables) >= 20, tables
    weak = [t["name"] for t in tables if not (t["enabled"] and t["forced"])]
    assert not weak, f"tables with org_id but without forced row-level security: {weak}"


async def test_neither_org_sees_changes_or_adds_to_the_others_rows(db_url, conn, orgs):
    a, b = orgs
    tables = [t["name"] for t in await (await conn.execute(TENANT_TABLES_SQL)).fetchall()]
    for viewer, owner in ((a, b), (b, a)):
        for table in tables:
            where = f"{table}: {viewer.slug} on {owner.slug}'s rows"
            before = await _rows_of(conn, table, owner.org_id)
            assert before and await _rows_of(conn, table, viewer.org_id), f"{table}: no fixture rows (add them)"

            seen = await _refused_or(db_url, viewer.user_id,
                                     f"SELECT * FROM eve.{table} WHERE org_id = %s", (owner.org_id,))
            assert seen is None or seen[0] == [], f"{where}: visible {seen[0]}"
            hidden = await _refused_or(db_url, viewer.user_id, f"SELECT count(*) AS n FROM eve.{table} "
                                       "WHERE org_id <> %s", (viewer.org_id,))  # nor under another name
            assert hidden is None or hidden[0] == [{"n": 0}], f"{where}: visible without naming the org"

            for col in (await _privileged_columns(conn, table, "UPDATE"))[:1]:
                changed = await _refused_or(db_url, viewer.user_id, f"UPDATE eve.{table} SET {col} = {col} "
                                            "WHERE org_id = %s", (owner.org_id,))
                assert changed is None or changed[1] == 0, f"{where}: UPDATE reached {changed[1]} row(s)"
            deleted = await _refused_or(db_url, viewer.user_id, f"DELETE FROM eve.{table} WHERE org_id = %s",
                                        (owner.org_id,))
            assert deleted is None or deleted[1] == 0, f"{where}: DELETE reached {deleted[1]} row(s)"

            # a copy of one of the viewer's own rows, relabelled with the owner's org
            cols = await _privileged_columns(conn, table, "INSERT")
            if "org_id" in cols:
                own = (await _rows_of(conn, table, viewer.org_id))[0]
                names = ", ".join(cols)
                # the role may insert these columns, so what refuses the row is the policy itself (a
                # UniqueViolation instead means the policy let the copy through to the key check)
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                    await _as(db_url, viewer.user_id,
                              f"INSERT INTO eve.{table} ({names}) SELECT {names} FROM jsonb_populate_record("
                              f"NULL::eve.{table}, %s::jsonb)", (json.dumps({**own, "org_id": str(owner.org_id)}),))

            assert await _rows_of(conn, table, owner.org_id) == before, f"{where}: rows changed"


async def test_each_org_sees_its_own_requests_results_and_events(db_url, orgs):
    """The other half of "symmetric": the fixtures are real to the API role, so "nothing of
    the other org" above is not "nothing at all"."""
    for t in orgs:
        for table in ("orchestration_requests", "orchestration_results", "request_events", "request_waits",
                      "hitl_requests", "schedules", "slack_threads"):
            rows, _ = await _as(db_url, t.user_id, f"SELECT org_id FROM eve.{table}")
            assert rows and {r["org_id"] for r in rows} == {t.org_id}, (t.slug, table, rows)
