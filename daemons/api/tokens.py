"""Verified tokens, remembered until they expire: a client sends the same JWT with every request.

Checking an HS256 signature and its claims (PyJWT) was the largest single cost of a POST
/requests after the database round trips. A token that verified once is the same token
until its `exp`: the Caller it yielded is kept, keyed by the token text and the secret, and
served again only while `exp` is in the future. Nothing else is skipped: a token that
failed is never remembered, and the cache is bounded (cleared when full).
"""

from __future__ import annotations

import base64
import json
import time

from eve.auth import Caller, verify

MAX_ENTRIES = 10_000
_cache: dict[tuple[str, str], tuple[Caller, float]] = {}


def _expiry(token: str) -> float:
    """`exp` of a token that verify() accepted (so its payload is authentic and has one)."""
    payload = token.split(".")[1]
    return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


def verify_cached(secret: str, token: str, now: float | None = None) -> Caller:
    key = (secret, token)
    hit = _cache.get(key)
    now = time.time() if now is None else now
    if hit is not None:
        if now < hit[1]:
            return hit[0]
        del _cache[key]
    caller = verify(secret, token)  # raises AuthError, like every failed check
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    _cache[key] = (caller, _expiry(token))
    return caller
