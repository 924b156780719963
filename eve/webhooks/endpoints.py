"""An org's webhook endpoints, as its owners and admins manage them (RLS: eve.is_org_admin).

The signing secret is made here, shown once in the answer to the create, and stored only
as ciphertext under EVE_SECRETS_KEY (the org secrets' key ring): the API may write it but
has no grant to read it back; the workers decrypt it to sign.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from uuid import UUID

from eve.errors import NotFound, ValidationError
from eve.orgsecrets import Keyring, require_keyring
from eve.queries import Q
from eve.webhooks import EVENTS
from eve.webhooks.guard import check_url
from eve.webhooks.sign import new_secret

AsyncConn = Any


def check_events(events: list[str]) -> list[str]:
    events = list(dict.fromkeys(e.strip() for e in events if e.strip()))
    if not events:
        raise ValidationError(f"name at least one event: {', '.join(EVENTS)}")
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise ValidationError(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}")
    return events


async def create(conn: AsyncConn, keyring: Keyring | None, org_id: UUID, *, url: str, events: list[str],
                 description: str = "") -> dict[str, Any]:
    """A new endpoint; the returned row carries `secret` (this once only)."""
    url, events = check_url(url.strip()), check_events(events)  # bad input is a 400 before anything else
    ring = require_keyring(keyring)
    secret = new_secret()
    row = await (await conn.execute(Q.webhook_endpoint_insert, {
        "org_id": org_id, "url": url, "events": events, "description": description[:500],
        "secret": ring.encrypt(secret)})).fetchone()
    return {**row, "secret": secret}


async def list_for(conn: AsyncConn, org_id: UUID) -> list[dict[str, Any]]:
    return await (await conn.execute(Q.webhook_endpoints_list, {"org_id": org_id})).fetchall()


async def get(conn: AsyncConn, org_id: UUID, endpoint_id: str) -> dict[str, Any]:
    row = await (await conn.execute(Q.webhook_endpoint_get, {"id": _uuid(endpoint_id), "org_id": org_id})).fetchone()
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id} in this org")
    return row


async def delete(conn: AsyncConn, org_id: UUID, endpoint_id: str) -> None:
    if await (await conn.execute(Q.webhook_endpoint_delete, {"id": _uuid(endpoint_id), "org_id": org_id})).fetchone() is None:
        raise NotFound(f"no webhook endpoint {endpoint_id} in this org")


async def deliveries(conn: AsyncConn, org_id: UUID, endpoint_id: str, limit: int = 50) -> list[dict[str, Any]]:
    await get(conn, org_id, endpoint_id)  # 404 rather than an empty list for another org's id
    return await (await conn.execute(Q.webhook_deliveries_list, {"id": _uuid(endpoint_id), "org_id": org_id,
                                                                 "limit": limit})).fetchall()


async def ping(conn: AsyncConn, org_id: UUID, endpoint_id: str) -> dict[str, Any]:
    """A `webhook.test` delivery through the outbox, like any other."""
    await get(conn, org_id, endpoint_id)
    return await (await conn.execute(Q.webhook_delivery_insert, {
        "endpoint_id": _uuid(endpoint_id), "org_id": org_id, "message_id": "msg_" + uuid.uuid4().hex,
        "event": "webhook.test",
        "payload": json.dumps({"type": "webhook.test", "data": {"endpointId": endpoint_id}})})).fetchone()


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a webhook endpoint id") from None
