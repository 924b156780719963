"""Test tenants created through the real admin functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from eve import admin


@dataclass(frozen=True)
class Tenant:
    slug: str
    org_id: UUID
    user_id: UUID
    email: str
    api_key: str


async def make_tenant(conn: psycopg.AsyncConnection[Any], slug: str, *, operator: bool = False) -> Tenant:
    org = await admin.create_org(conn, slug.title(), slug)
    email = f"{slug}-user@example.com"
    user = await admin.create_user(conn, email, operator=operator)
    await admin.add_member(conn, slug, email, "owner")
    key = await admin.create_api_key(conn, slug, email, name="test")
    return Tenant(slug=slug, org_id=org["id"], user_id=user["id"], email=email, api_key=key.token)
