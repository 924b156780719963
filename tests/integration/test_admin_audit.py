"""`eve admin …` (the bootstrap path, service role) writes the org's audit log too, and the org's
admins read it under row-level security; its plain members do not."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from eve import admin
from eve.db import set_identity
from tests.support.tenants import make_tenant


async def _visible_audit(db_url: str, user_id) -> list[tuple[str, str, str]]:
    async with await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as c:
        async with c.transaction():
            await set_identity(c, user_id=user_id)
            cur = await c.execute("SELECT action, target, actor_email FROM eve.audit_log ORDER BY id")
            return [(r["action"], r["target"], r["actor_email"]) for r in await cur.fetchall()]


async def test_bootstrap_changes_are_audited_and_visible_to_admins_only(conn, db_url):
    owner = await make_tenant(conn, "boot")
    await admin.create_user(conn, "m@example.com")
    await admin.add_member(conn, "boot", "m@example.com", "member")
    key = await admin.create_api_key(conn, "boot", "m@example.com", name="k")
    await admin.revoke_api_key(conn, key.prefix)
    rows = await _visible_audit(db_url, owner.user_id)
    actor = admin.ADMIN_ACTOR
    assert rows[-3:] == [("member.add", "m@example.com", actor), ("api_key.create", key.prefix, actor),
                         ("api_key.revoke", key.prefix, actor)]
    member = (await (await conn.execute("SELECT id FROM eve.users WHERE email = 'm@example.com'")).fetchone())["id"]
    assert await _visible_audit(db_url, member) == []
    other = await make_tenant(conn, "elsewhere")
    assert all(r[1] != key.prefix for r in await _visible_audit(db_url, other.user_id))
