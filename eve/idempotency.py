"""Idempotency keys: a retried POST with the same key gets the first answer, not a second agent.

Every agent run costs money, and a client whose response was lost cannot tell whether its
request was made. With an `Idempotency-Key` header the API claims the key (per org) in the
same transaction that creates the request and stores the answer with it; a retry with the
same key and the same body gets that answer again (with `Idempotent-Replayed: true`), the
same key with another body is a 422 naming the key, and concurrent duplicates make one
request — the table's primary key decides, not a read-then-write (sql/migrations/0020).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eve.errors import Conflict, EveError, ValidationError
from eve.queries import Q

MAX_KEY = 255
DEFAULT_TTL_S = 24 * 3600


class IdempotencyKeyReused(EveError):
    """The key was used before with another body: the caller mixed up two operations."""

    code = "idempotency_key_reused"
    http_status = 422


@dataclass(frozen=True)
class Replay:
    status: int
    response: Any


def validate_key(key: str) -> str:
    """1-255 printable ASCII characters (a UUID is the usual choice)."""
    if not 1 <= len(key) <= MAX_KEY or not key.isascii() or not key.isprintable():
        raise ValidationError(f"Idempotency-Key must be 1-{MAX_KEY} printable ASCII characters (a UUID will do)")
    return key


def body_hash(encoded: bytes) -> bytes:
    """What makes two bodies the same operation: the decoded body, encoded again (so key order
    and whitespace of what the client sent do not matter)."""
    return hashlib.sha256(encoded).digest()


async def claim(conn: Any, *, org_id: UUID, key: str, route: str, digest: bytes, user_id: UUID,
                ttl_s: int = DEFAULT_TTL_S) -> Replay | None:
    """Claim `key` for this transaction (None: go on and store the answer with `finish`), or
    the answer a committed POST with it got. Waits for a concurrent POST with the key."""
    params = {"org_id": org_id, "key": key, "route": route, "body_hash": digest, "user_id": user_id,
              "ttl_s": ttl_s}
    await conn.execute(Q.idempotency_expire, params)
    if await (await conn.execute(Q.idempotency_claim, params)).fetchone() is not None:
        return None
    row = await (await conn.execute(Q.idempotency_find, params)).fetchone()
    if row is None:  # expired and removed between the two statements: rare, and a retry works
        raise Conflict(f"Idempotency-Key {key!r} expired while it was being reused; send it again",
                       code="idempotency_key_busy")
    if row["route"] != route or bytes(row["body_hash"]) != digest:
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was already used with a different "
                                   f"{'request' if row['route'] == route else 'operation (' + row['route'] + ')'}"
                                   "; use a new key for a new request")
    return Replay(status=row["status"], response=row["response"])


async def finish(conn: Any, *, org_id: UUID, key: str, status: int, response_json: str) -> None:
    await conn.execute(Q.idempotency_finish, {"org_id": org_id, "key": key, "status": status,
                                              "response": response_json})
