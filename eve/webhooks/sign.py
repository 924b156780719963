"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a receiver checks.

Three headers: `webhook-id` (the same on every retry of one message, to dedupe on),
`webhook-timestamp` (Unix seconds, to refuse replays) and `webhook-signature`
(`v1,` + base64 HMAC-SHA256 over `id.timestamp.body` with the endpoint's secret, the
base64 part of `whsec_...`). Any library of the spec verifies them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, message_id, timestamp, body),
            "content-type": "application/json"}
