"""Bootstrap and administration straight on the database (operators on the VPS).

These run as `service_role`: they create the first org, user and key before anyone
can authenticate to the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from eve import apikeys
from eve.db import set_service
from eve.errors import Conflict, NotFound, ValidationError
from eve.queries import Q

AsyncConn = psycopg.AsyncConnection[Any]
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
ADMIN_ACTOR = "eve admin (database)"


async def _audit(conn: AsyncConn, org_id: UUID, action: str, target: str, **data: Any) -> None:
    """The org's audit log records bootstrap changes too (the API's changes: eve.orgadmin)."""
    await conn.execute(Q.audit_insert_admin, {"org_id": org_id, "actor": ADMIN_ACTOR, "action": action,
                                              "target": target, "data": Jsonb(data)})


@dataclass(frozen=True, slots=True)
class CreatedKey:
    id: UUID
    token: str
    prefix: str
    org_slug: str
    user_email: str


async def create_org(conn: AsyncConn, name: str, slug: str) -> dict[str, Any]:
    if not _SLUG.match(slug):
        raise ValidationError(f"slug {slug!r} must be lowercase letters, digits and dashes (max 63)")
    if not name.strip():
        raise ValidationError("organization name must not be empty")
    async with conn.transaction():
        await set_service(conn)
        try:
            cur = await conn.execute(Q.org_insert, {"name": name.strip(), "slug": slug})
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"an organization with slug {slug!r} already exists") from None
        row = await cur.fetchone()
    assert row is not None
    return row


async def get_org(conn: AsyncConn, slug: str) -> dict[str, Any]:
    cur = await conn.execute(Q.org_get_by_slug, {"slug": slug})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no organization with slug {slug!r}")
    return row


async def create_user(conn: AsyncConn, email: str, *, display_name: str | None = None,
                      operator: bool = False) -> dict[str, Any]:
    if not _EMAIL.match(email):
        raise ValidationError(f"{email!r} is not an email address")
    async with conn.transaction():
        await set_service(conn)
        try:
            cur = await conn.execute(
                Q.user_insert, {"email": email.lower(), "display_name": display_name, "is_operator": operator}
            )
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"a user with email {email!r} already exists") from None
        row = await cur.fetchone()
    assert row is not None
    return row


async def get_user(conn: AsyncConn, email: str) -> dict[str, Any]:
    cur = await conn.execute(Q.user_get_by_email, {"email": email.lower()})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no user with email {email!r}")
    return row


async def add_member(conn: AsyncConn, org_slug: str, email: str, role: str = "member") -> dict[str, Any]:
    if role not in ("owner", "admin", "member"):
        raise ValidationError(f"role must be owner, admin or member, not {role!r}")
    async with conn.transaction():
        await set_service(conn)
        org = await get_org(conn, org_slug)
        user = await get_user(conn, email)
        cur = await conn.execute(Q.member_upsert, {"org_id": org["id"], "user_id": user["id"], "role": role})
        row = await cur.fetchone()
        await _audit(conn, org["id"], "member.add", email.lower(), role=role)
    assert row is not None
    return row


async def create_api_key(conn: AsyncConn, org_slug: str, email: str, name: str = "") -> CreatedKey:
    """A new key for a member of the org. The token is returned once and never stored."""
    async with conn.transaction():
        await set_service(conn)
        org = await get_org(conn, org_slug)
        user = await get_user(conn, email)
        cur = await conn.execute(
            "SELECT 1 FROM eve.org_members WHERE org_id = %s AND user_id = %s", (org["id"], user["id"])
        )
        if await cur.fetchone() is None and not user["is_operator"]:
            raise ValidationError(f"{email} is not a member of {org_slug}; add them first (eve admin member add)")
        key = apikeys.generate()
        cur = await conn.execute(
            Q.apikey_insert,
            {"org_id": org["id"], "user_id": user["id"], "name": name, "prefix": key.prefix,
             "secret_hash": key.secret_hash},
        )
        row = await cur.fetchone()
        await _audit(conn, org["id"], "api_key.create", key.prefix, name=name, user=email.lower())
    assert row is not None
    return CreatedKey(id=row["id"], token=key.token, prefix=key.prefix, org_slug=org_slug, user_email=email)


async def revoke_api_key(conn: AsyncConn, key_or_prefix: str) -> dict[str, Any]:
    async with conn.transaction():
        await set_service(conn)
        cur = await conn.execute(Q.apikey_revoke, {"prefix": apikeys.prefix_of(key_or_prefix)})
        row = await cur.fetchone()
        if row is not None:
            await _audit(conn, row["org_id"], "api_key.revoke", row["prefix"])
    if row is None:
        raise NotFound(f"no API key with prefix {apikeys.prefix_of(key_or_prefix)!r}")
    return row


async def bootstrap(conn: AsyncConn, *, org_slug: str = "default", email: str = "admin@localhost") -> CreatedKey | None:
    """First run: org, operator user, owner membership and a key. None if already bootstrapped."""
    cur = await conn.execute("SELECT 1 FROM eve.organizations WHERE slug = %s", (org_slug,))
    if await cur.fetchone() is not None:
        return None
    await create_org(conn, org_slug.capitalize(), org_slug)
    try:
        await get_user(conn, email)
    except NotFound:
        await create_user(conn, email, display_name="Operator", operator=True)
    await add_member(conn, org_slug, email, "owner")
    return await create_api_key(conn, org_slug, email, name="bootstrap")
