"""Self-service administration of an org over the API (#19): keys, members, limits, audit.

Every function runs inside the caller's `eve_api` transaction (eve.db.as_user), so
row-level security decides what exists: another org is not found (404), not forbidden.
Inside a visible org, management needs an owner or admin (or an operator), checked in
the database (`eve.is_org_admin`, 0011's policies enforce the same on every write), so a
role changed a minute ago counts now, not when the caller's token was issued. Every
change writes an `eve.audit_log` row in the same transaction: it exists iff the change does.
`eve admin …` (service role, on the database host) stays the bootstrap path.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from eve import apikeys
from eve.errors import Conflict, Forbidden, NotFound, ValidationError
from eve.queries import Q

AsyncConn = psycopg.AsyncConnection[Any]
ROLES = ("owner", "admin", "member")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$|^[^@\s]+@localhost$")


async def resolve_org(conn: AsyncConn, default_org: UUID, slug: str | None) -> UUID:
    """The caller's own org, or (operators, and members of several orgs) the one named."""
    if not slug:
        return default_org
    row = await (await conn.execute(Q.org_by_slug_visible, {"slug": slug})).fetchone()
    if row is None:
        raise NotFound(f"organization {slug!r} not found")
    return row["id"]


async def require_admin(conn: AsyncConn, org_id: UUID) -> None:
    row = await (await conn.execute(Q.is_org_admin, {"org_id": org_id})).fetchone()
    if not row["admin"]:
        raise Forbidden("only the organization's owners and admins (or an operator) may do this")


async def audit(conn: AsyncConn, org_id: UUID, action: str, target: str, data: dict[str, Any] | None = None) -> None:
    await conn.execute(Q.audit_insert, {"org_id": org_id, "action": action, "target": target,
                                        "data": Jsonb(data or {})})


async def audit_list(conn: AsyncConn, org_id: UUID, *, limit: int = 100, before: int | None = None) -> list[dict]:
    await require_admin(conn, org_id)
    return await (await conn.execute(Q.audit_list, {"org_id": org_id, "limit": limit, "before": before})).fetchall()


# -- API keys ----------------------------------------------------------------------------------

async def keys_list(conn: AsyncConn, org_id: UUID) -> list[dict[str, Any]]:
    await require_admin(conn, org_id)
    return await (await conn.execute(Q.keys_list, {"org_id": org_id})).fetchall()


async def key_create(conn: AsyncConn, org_id: UUID, *, name: str, for_user: str | None,
                     caller_id: UUID) -> dict[str, Any]:
    """A new key for a member (default: the caller). The token is in the answer, once."""
    await require_admin(conn, org_id)
    if len(name) > 100:
        raise ValidationError("key name must be at most 100 characters")
    user_id = caller_id
    if for_user:
        member = await _member(conn, org_id, for_user)
        user_id = member["user_id"]
    key = apikeys.generate()
    try:
        row = await (await conn.execute(Q.key_create, {"org_id": org_id, "user_id": user_id, "name": name,
                                                       "prefix": key.prefix, "secret_hash": key.secret_hash})).fetchone()
    except psycopg.errors.InsufficientPrivilege:  # the policy: the key's user must be a member
        raise ValidationError("a key can only be made for a member of the organization; add them first") from None
    await audit(conn, org_id, "api_key.create", key.prefix, {"name": name, "user_id": str(user_id)})
    return {**row, "token": key.token}


async def key_revoke(conn: AsyncConn, org_id: UUID, prefix: str) -> dict[str, Any]:
    await require_admin(conn, org_id)
    prefix = apikeys.prefix_of(prefix)
    row = await (await conn.execute(Q.key_revoke, {"org_id": org_id, "prefix": prefix})).fetchone()
    if row is None:
        raise NotFound(f"no API key with prefix {prefix!r} in this organization")
    await audit(conn, org_id, "api_key.revoke", prefix)
    return row


# -- members -----------------------------------------------------------------------------------

async def _member(conn: AsyncConn, org_id: UUID, who: str) -> dict[str, Any]:
    row = await (await conn.execute(Q.member_get, {"org_id": org_id, "who": who.strip()})).fetchone()
    if row is None:
        raise NotFound(f"{who!r} is not a member of this organization")
    return row


def _role(role: Any) -> str:
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return str(role)


async def _guard_owner(conn: AsyncConn, org_id: UUID, *roles: str) -> None:
    """Only owners (and operators) grant, change or remove the owner role."""
    if "owner" in roles:
        cur = await conn.execute(Q.is_owner_or_operator, {"org_id": org_id})
        if not (await cur.fetchone())["ok"]:
            raise Forbidden("only an owner (or an operator) may grant, change or remove the owner role")


async def _keep_an_admin(conn: AsyncConn, org_id: UUID, old_role: str, new_role: str | None) -> None:
    if old_role in ("owner", "admin") and new_role not in ("owner", "admin"):
        n = (await (await conn.execute(Q.admins_count, {"org_id": org_id})).fetchone())["n"]
        if n <= 1:
            raise Conflict("this is the organization's last owner/admin; make someone else admin first")


async def members_list(conn: AsyncConn, org_id: UUID) -> list[dict[str, Any]]:
    await require_admin(conn, org_id)
    return await (await conn.execute(Q.members_list, {"org_id": org_id})).fetchall()


async def member_add(conn: AsyncConn, org_id: UUID, *, email: str, role: str = "member",
                     display_name: str | None = None) -> dict[str, Any]:
    await require_admin(conn, org_id)
    role = _role(role)
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise ValidationError(f"{email!r} is not an email address")
    await _guard_owner(conn, org_id, role)
    uid = (await (await conn.execute(Q.member_user_ensure, {"email": email, "display_name": display_name}))
           .fetchone())["user_id"]
    row = await (await conn.execute(Q.member_add, {"org_id": org_id, "user_id": uid, "role": role})).fetchone()
    if row is None:
        raise Conflict(f"{email} is already a member; change the role with PATCH /members/{email}")
    await audit(conn, org_id, "member.add", email, {"role": role})
    return await _member(conn, org_id, email)


async def member_set_role(conn: AsyncConn, org_id: UUID, who: str, role: str) -> dict[str, Any]:
    await require_admin(conn, org_id)
    role = _role(role)
    member = await _member(conn, org_id, who)
    await _guard_owner(conn, org_id, role, member["role"])
    await _keep_an_admin(conn, org_id, member["role"], role)
    await conn.execute(Q.member_set_role, {"org_id": org_id, "user_id": member["user_id"], "role": role})
    await audit(conn, org_id, "member.role", member["email"], {"from": member["role"], "to": role})
    return {**member, "role": role}


async def member_remove(conn: AsyncConn, org_id: UUID, who: str) -> dict[str, Any]:
    await require_admin(conn, org_id)
    member = await _member(conn, org_id, who)
    await _guard_owner(conn, org_id, member["role"])
    await _keep_an_admin(conn, org_id, member["role"], None)
    revoked = [r["prefix"] for r in await (await conn.execute(
        Q.member_revoke_keys, {"org_id": org_id, "user_id": member["user_id"]})).fetchall()]
    await conn.execute(Q.member_remove, {"org_id": org_id, "user_id": member["user_id"]})
    await audit(conn, org_id, "member.remove", member["email"], {"role": member["role"], "keys_revoked": revoked})
    return {**member, "keys_revoked": revoked}


# -- org and limits ----------------------------------------------------------------------------

async def org_current(conn: AsyncConn, org_id: UUID) -> dict[str, Any]:
    row = await (await conn.execute(Q.org_current, {"org_id": org_id})).fetchone()
    if row is None:
        raise NotFound("organization not found")
    return row


async def set_limits(conn: AsyncConn, org_id: UUID, params: dict[str, Any], changes: dict[str, Any]) -> dict:
    """Operators only (the policy on eve.org_limits says so too)."""
    ok = (await (await conn.execute(Q.is_operator)).fetchone())["op"]
    if not ok:
        raise Forbidden("only operators may change an organization's limits")
    await conn.execute(Q.org_limits_upsert, {"org_id": org_id, **params})
    await audit(conn, org_id, "limits.set", "", {k: (str(v) if v is not None else None) for k, v in changes.items()})
    return await org_current(conn, org_id)
