"""API keys: `eve_<prefix>_<secret>`, shown once, stored as a SHA-256 hash of the secret.

The prefix is public (it finds the row, and appears in listings); the secret has 256
bits of entropy, so a fast hash is the right tool (as GitHub does for its tokens): a
slow password hash buys nothing against a random 32-byte value. Comparison is
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_KEY = re.compile(r"^eve_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class NewKey:
    prefix: str
    secret: str

    @property
    def token(self) -> str:
        return f"eve_{self.prefix}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def generate() -> NewKey:
    return NewKey(prefix=secrets.token_hex(4), secret=secrets.token_urlsafe(32))


def hash_secret(secret: str) -> str:
    return "sha256$" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None (callers answer 401 either way)."""
    m = _KEY.match(token.strip()) if isinstance(token, str) else None
    return (m.group(1), m.group(2)) if m else None


def verify(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret).encode(), stored_hash.encode())


def prefix_of(token_or_prefix: str) -> str:
    """Accept a whole key or just its prefix (for revoke)."""
    parsed = parse(token_or_prefix)
    return parsed[0] if parsed else token_or_prefix.strip()
