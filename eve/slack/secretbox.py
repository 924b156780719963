"""Encryption of stored Slack secrets (bot token, signing secret, app token).

AES-256-GCM with a key derived (HKDF-SHA256) from JWT_SECRET, so no new secret has to be
configured: every process that touches Slack secrets (the API, `eve slack run`, `eve admin
slack connect`) already holds JWT_SECRET, and whoever holds it can mint any API token
anyway. A database dump or a leaked API DSN yields only ciphertext. Rotating JWT_SECRET
means running `eve admin slack connect` again for each installation.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from eve.auth import check_secret
from eve.errors import ConfigError

_INFO = b"eve-horizon slack secrets v1"
_VERSION = b"\x01"


def key_from(jwt_secret: str | None) -> bytes:
    """The 32-byte key for `jwt_secret` (ConfigError when it is missing or short)."""
    secret = check_secret(jwt_secret)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode("utf-8"))


def seal(key: bytes, plaintext: str, *, aad: str) -> bytes:
    """Encrypt; `aad` (the installation's team id) binds the ciphertext to its row."""
    nonce = os.urandom(12)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), aad.encode("utf-8"))


def unseal(key: bytes, blob: bytes, *, aad: str) -> str:
    from cryptography.exceptions import InvalidTag

    data = bytes(blob)
    if not data.startswith(_VERSION) or len(data) < 1 + 12 + 16:
        raise ConfigError("stored Slack secret is not in a format this version reads; "
                          "run `eve admin slack connect` again")
    try:
        return AESGCM(key).decrypt(data[1:13], data[13:], aad.encode("utf-8")).decode("utf-8")
    except InvalidTag:
        raise ConfigError("cannot decrypt the stored Slack secrets: JWT_SECRET changed since `eve admin slack "
                          "connect`; run it again with the current JWT_SECRET") from None
