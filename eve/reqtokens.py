"""Request tokens: the credential an agent gets as EVE_API_TOKEN, scoped to its own request.

`everq_<prefix>_<secret>`, made by the worker for each attempt (a random secret, so the
worker needs no JWT_SECRET), stored as a SHA-256 hash like API keys (eve.apikeys), and
revoked when the attempt ends. The API looks it up through `eve.lookup_request_token`,
which answers "valid" only while the request still runs that attempt: a token leaked by
an agent is worthless once the agent's turn is over, even if the worker died before
revoking it. The Caller it yields carries `request_id`; eve.scope decides what such a
caller may do (its own request tree only).
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from uuid import UUID

import psycopg

from eve import apikeys
from eve.auth import Caller
from eve.errors import AuthError
from eve.queries import Q

PREFIX = "everq_"
_TOKEN = re.compile(r"^everq_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_INVALID = "invalid or expired credentials"
_DUMMY_HASH = apikeys.hash_secret("not-a-real-request-token")


def is_request_token(token: str) -> bool:
    return token.startswith(PREFIX)


def parse(token: str) -> tuple[str, str] | None:
    m = _TOKEN.match(token.strip()) if isinstance(token, str) else None
    return (m.group(1), m.group(2)) if m else None


async def issue(conn: psycopg.AsyncConnection[Any], *, request_id: UUID, org_id: UUID, attempt: int) -> str:
    """A new token for this attempt (service role); older ones of the request are revoked."""
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    await conn.execute(Q.request_token_insert, {"request_id": request_id, "org_id": org_id, "attempt": attempt,
                                                "prefix": prefix, "secret_hash": apikeys.hash_secret(secret)})
    return f"{PREFIX}{prefix}_{secret}"


async def revoke(conn: psycopg.AsyncConnection[Any], request_id: UUID) -> None:
    await conn.execute(Q.request_token_revoke, {"request_id": request_id})


async def authenticate(conn: psycopg.AsyncConnection[Any], token: str) -> Caller:
    """Token → Caller scoped to its request; wrong, unknown, revoked or stale all say the same."""
    parsed = parse(token)
    row = None
    if parsed:
        row = await (await conn.execute(Q.request_token_lookup, {"prefix": parsed[0]})).fetchone()
    ok = apikeys.verify(parsed[1] if parsed else "x", row["secret_hash"] if row else _DUMMY_HASH)
    if not (row and ok and row["valid"]):
        raise AuthError(_INVALID)
    return Caller(user_id=row["user_id"], org_id=row["org_id"], role=row["role"], operator=False,
                  token_id=f"request:{parsed[0]}", request_id=row["request_id"])  # type: ignore[index]
