"""Self-service administration over the API (#19): keys, members, the audit log, limits.

Owners/admins manage their org; a member (not admin) gets 403; another org's things are
404 (row-level security hides them); operators reach every org with ?org=SLUG. Every
change leaves an audit row that the org's admins can read.
"""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from eve import admin
from eve.db import set_identity
from tests.integration.api.conftest import Client, client_for
from tests.support.tenants import Tenant, make_tenant


async def _member_of(conn, org_slug: str, email: str, role: str = "member") -> Tenant:
    user = await admin.create_user(conn, email)
    await admin.add_member(conn, org_slug, email, role)
    key = await admin.create_api_key(conn, org_slug, email, name="m")
    org = await admin.get_org(conn, org_slug)
    return Tenant(slug=org_slug, org_id=org["id"], user_id=user["id"], email=email, api_key=key.token)


def _audit(c: Client) -> list[tuple[str, str, str]]:
    r = c.http.get("/audit")
    assert r.status_code == 200, r.text
    return [(a["action"], a["target"], a["actorEmail"]) for a in r.json()]


async def test_an_owner_creates_lists_and_revokes_keys_and_each_change_is_audited(api, alice):
    r = alice.http.post("/api-keys", json={"name": "ci"})
    assert r.status_code == 201, r.text
    created = r.json()
    token, prefix = created["token"], created["prefix"]
    assert token.startswith(f"eve_{prefix}_")
    assert httpx.post(f"{api.url}/auth/token", json={"apiKey": token}).status_code == 200
    listed = alice.http.get("/api-keys").json()
    mine = [k for k in listed if k["prefix"] == prefix]
    assert mine and mine[0]["name"] == "ci" and mine[0]["revokedAt"] is None
    assert all("token" not in k and "secretHash" not in k for k in listed)  # the secret is shown once only
    r = alice.http.delete(f"/api-keys/{prefix}")
    assert r.status_code == 200 and r.json()["revokedAt"]
    assert httpx.post(f"{api.url}/auth/token", json={"apiKey": token}).status_code == 401
    assert _audit(alice)[:2] == [("api_key.revoke", prefix, alice.tenant.email),
                                 ("api_key.create", prefix, alice.tenant.email)]


async def test_a_member_who_is_not_admin_gets_403_on_management(api, conn, alice):
    m = client_for(api, await _member_of(conn, "alice-org", "plain@example.com"))
    calls = [("GET", "/api-keys", None), ("POST", "/api-keys", {"name": "x"}),
             ("DELETE", f"/api-keys/{alice.tenant.api_key[4:12]}", None),
             ("GET", "/members", None), ("POST", "/members", {"email": "new@example.com"}),
             ("PATCH", "/members/plain@example.com", {"role": "admin"}),
             ("DELETE", f"/members/{alice.tenant.email}", None), ("GET", "/audit", None),
             ("GET", "/secrets", None), ("PUT", "/secrets/TOKEN_X", {"value": "abcdefgh"}),
             ("DELETE", "/secrets/TOKEN_X", None)]
    for method, path, body in calls:
        r = m.http.request(method, path, json=body)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert r.json()["error"] == "forbidden"
    # the member can still see its org and use the queue
    assert m.http.get("/orgs/current").json()["slug"] == "alice-org"
    # nothing it tried was written
    assert [a for a in _audit(alice) if a[2] == "plain@example.com"] == []


async def test_other_orgs_are_404(api, alice, bob):
    bob_prefix = bob.tenant.api_key[4:12]
    assert alice.http.get("/api-keys", params={"org": "bob-org"}).status_code == 404
    assert alice.http.get("/orgs/current", params={"org": "bob-org"}).status_code == 404
    assert alice.http.delete(f"/api-keys/{bob_prefix}").status_code == 404  # not in alice's org
    assert alice.http.delete(f"/members/{bob.tenant.email}").status_code == 404
    assert alice.http.patch(f"/members/{bob.tenant.email}", json={"role": "member"}).status_code == 404
    assert httpx.post(f"{api.url}/auth/token", json={"apiKey": bob.tenant.api_key}).status_code == 200


async def test_members_add_promote_remove_with_guards(api, conn, alice):
    r = alice.http.post("/members", json={"email": "New@Example.com", "displayName": "New"})
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "new@example.com" and r.json()["role"] == "member"
    assert alice.http.post("/members", json={"email": "new@example.com"}).status_code == 409
    assert alice.http.post("/members", json={"email": "nope"}).status_code == 400
    assert alice.http.post("/members", json={"email": "x@example.com", "role": "king"}).status_code == 400
    # a key for the new member, made by the owner
    r = alice.http.post("/api-keys", json={"name": "for-new", "user": "new@example.com"})
    assert r.status_code == 201, r.text
    new = client_for(api, Tenant("alice-org", alice.tenant.org_id, alice.tenant.user_id, "new@example.com",
                                 r.json()["token"]))
    assert new.http.get("/members").status_code == 403
    assert alice.http.patch("/members/new@example.com", json={"role": "admin"}).json()["role"] == "admin"
    assert new.http.get("/members").status_code == 200  # the role counts at once, not at the next token
    # an admin may not make owners or touch the owner
    assert new.http.patch("/members/new@example.com", json={"role": "owner"}).status_code == 403
    assert new.http.delete(f"/members/{alice.tenant.email}").status_code == 403
    # the last owner/admin cannot be demoted
    assert alice.http.patch("/members/new@example.com", json={"role": "member"}).status_code == 200
    r = alice.http.patch(f"/members/{alice.tenant.email}", json={"role": "member"})
    assert r.status_code == 409 and "last owner/admin" in r.json()["message"]
    # removal revokes the member's keys for this org
    r = alice.http.delete("/members/new@example.com")
    assert r.status_code == 200 and len(r.json()["keysRevoked"]) == 1
    assert httpx.post(f"{api.url}/auth/token", json={"apiKey": new.tenant.api_key}).status_code == 401
    actions = [a[0] for a in _audit(alice)]
    assert actions[:5] == ["member.remove", "member.role", "member.role", "api_key.create", "member.add"]


async def test_operators_reach_any_org_and_only_they_set_limits(api, conn, alice, bob):
    op = client_for(api, await make_tenant(conn, "staff", operator=True))
    assert op.http.get("/api-keys", params={"org": "bob-org"}).status_code == 200
    r = op.http.put("/orgs/bob-org/limits", json={"maxPending": 5, "monthlyBudgetUsd": 10})
    assert r.status_code == 200, r.text
    assert (r.json()["maxPending"], r.json()["monthlyBudgetUsd"]) == (5, 10.0)
    r = op.http.put("/orgs/bob-org/limits", json={"maxPending": None})  # null clears, the rest stays
    assert (r.json()["maxPending"], r.json()["monthlyBudgetUsd"]) == (None, 10.0)
    assert op.http.put("/orgs/bob-org/limits", json={"maxPending": -1}).status_code == 400
    assert op.http.put("/orgs/bob-org/limits", json={"maxPending": 2**40}).status_code == 400
    assert op.http.put("/orgs/bob-org/limits", json={"maxRunningByType": {"general": "x"}}).status_code == 400
    assert op.http.put("/orgs/bob-org/limits", json={"bogus": 1}).status_code == 400
    assert bob.http.put("/orgs/bob-org/limits", json={"maxPending": 1000}).status_code == 403
    assert alice.http.put("/orgs/bob-org/limits", json={"maxPending": 1000}).status_code == 404
    # bob's owner sees the operator's change in its audit log; alice sees none of it
    assert ("limits.set", "", "staff-user@example.com") in _audit(bob)
    assert all(a[0] != "limits.set" for a in _audit(alice))
    orgs = {o["slug"] for o in op.http.get("/orgs").json()}
    assert {"alice-org", "bob-org", "staff"} <= orgs
    assert {o["slug"] for o in alice.http.get("/orgs").json()} == {"alice-org"}


async def test_the_database_refuses_a_member_writing_keys_or_members(conn, db_url):
    """RLS, not only the route: as eve_api for a plain member, the writes fail."""
    owner = await make_tenant(conn, "rawco")
    m = await _member_of(conn, "rawco", "raw-member@example.com")
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        for sql, args in [
            ("INSERT INTO eve.api_keys (org_id, user_id, name, prefix, secret_hash) VALUES (%s, %s, 'x', 'zzzzzzzz', 'h')",
             (m.org_id, m.user_id)),
            ("INSERT INTO eve.org_members (org_id, user_id, role) VALUES (%s, %s, 'owner') "
             "ON CONFLICT (org_id, user_id) DO UPDATE SET role = 'owner'", (m.org_id, m.user_id)),
            ("INSERT INTO eve.audit_log (org_id, actor_user_id, action) VALUES (%s, %s, 'forged')",
             (m.org_id, m.user_id)),
        ]:
            async with c.transaction():
                await set_identity(c, user_id=m.user_id)
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await c.execute(sql, args)
            await c.rollback()
        async with c.transaction():
            await set_identity(c, user_id=m.user_id)
            cur = await c.execute("UPDATE eve.api_keys SET revoked_at = now() WHERE org_id = %s", (owner.org_id,))
            assert cur.rowcount == 0  # the owner's key is not the member's to revoke
            cur = await c.execute("SELECT count(*) FROM eve.audit_log")
            assert (await cur.fetchone())[0] == 0
