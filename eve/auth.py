"""Tokens: API key → short-lived JWT (HS256), and strict verification of that JWT.

Verification pins the algorithm (so `alg: none` and algorithm confusion fail), requires
`exp`, `iat`, `sub`, `jti` and `org`, and maps every failure to the same 401 message: a
caller learns nothing about which part was wrong. Key checks are constant-time, and an
unknown prefix costs the same hash-and-compare as a known one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import jwt
import psycopg

from eve import apikeys
from eve.errors import AuthError, ConfigError
from eve.queries import Q

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
DEFAULT_TTL_S = 3600
_INVALID = "invalid or expired credentials"
_DUMMY_HASH = apikeys.hash_secret("not-a-real-secret")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, from a verified token."""

    user_id: UUID
    org_id: UUID
    role: str
    operator: bool
    token_id: str
    # set for an agent's request token (EVE_API_TOKEN): the caller may act only within
    # this request's own tree (eve.scope)
    request_id: UUID | None = None
    key_id: UUID | None = None  # the API key the token came from (per-key rate limits, #19)


def check_secret(secret: str | None) -> str:
    if not secret or len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"JWT_SECRET must be set to at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
        )
    return secret


def issue(secret: str, *, user_id: UUID, org_id: UUID, role: str, operator: bool,
          ttl_s: int = DEFAULT_TTL_S, now: datetime | None = None, key_id: UUID | None = None) -> tuple[str, datetime]:
    now = now or datetime.now(timezone.utc)
    expires = now + timedelta(seconds=ttl_s)
    claims = {"sub": str(user_id), "org": str(org_id), "role": role, "op": bool(operator),
              "iat": int(now.timestamp()), "exp": int(expires.timestamp()), "jti": uuid.uuid4().hex}
    if key_id is not None:
        claims["kid"] = str(key_id)
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires


def verify(secret: str, token: str) -> Caller:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub", "jti", "org"]})
        return Caller(user_id=UUID(claims["sub"]), org_id=UUID(claims["org"]), role=str(claims.get("role", "member")),
                      operator=bool(claims.get("op", False)), token_id=str(claims["jti"]),
                      key_id=UUID(claims["kid"]) if claims.get("kid") else None)
    except (jwt.PyJWTError, KeyError, ValueError, TypeError, AttributeError):  # UUID(5): AttributeError
        raise AuthError(_INVALID) from None


def bearer(header: str | None) -> str:
    if not header:
        raise AuthError("missing Authorization header: send `Authorization: Bearer <token>` (POST /auth/token)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization header must be `Bearer <token>`")
    return token.strip()


async def exchange_api_key(conn: psycopg.AsyncConnection[Any], api_key: Any, secret: str,
                           ttl_s: int = DEFAULT_TTL_S) -> tuple[str, datetime]:
    """API key → (JWT, expiry). Wrong, unknown or revoked keys all raise the same AuthError."""
    parsed = apikeys.parse(api_key) if isinstance(api_key, str) else None
    row = None
    if parsed:
        cur = await conn.execute(Q.apikey_lookup, {"prefix": parsed[0]})
        row = await cur.fetchone()
    secret_part = parsed[1] if parsed else "x"
    ok = apikeys.verify(secret_part, row["secret_hash"] if row else _DUMMY_HASH)
    if not (row and ok and not row["revoked"]):
        raise AuthError(_INVALID)
    await conn.execute(Q.apikey_touch, {"key_id": row["key_id"]})
    return issue(secret, user_id=row["user_id"], org_id=row["org_id"], role=row["role"],
                 operator=row["is_operator"], ttl_s=ttl_s, key_id=row["key_id"])
