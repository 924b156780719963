"""Inbound request signatures (HTTP mode), checked before the body is parsed.

Slack signs `v0:{X-Slack-Request-Timestamp}:{raw body}` with HMAC-SHA256 under the app's
signing secret. slack_sdk's SignatureVerifier does exactly that: a timestamp more than 5
minutes from now (either way) fails, and the comparison is hmac.compare_digest. The body
does not say which installation it is for until it is parsed, so every installation's
secret is tried; the teams whose secret matched are the only ones the body may name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from slack_sdk.signature import SignatureVerifier

MAX_AGE_S = 5 * 60


def verified_teams(installations: Iterable[tuple[str, str]], body: bytes,
                   headers: Mapping[str, str]) -> set[str]:
    """Team ids (from (team_id, signing_secret) pairs) whose secret signed this request."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get("x-slack-request-timestamp")
    signature = lower.get("x-slack-signature")
    if not timestamp or not signature or not timestamp.isdigit():
        return set()
    out: set[str] = set()
    for team_id, secret in installations:
        if secret and SignatureVerifier(secret).is_valid(body=body, timestamp=timestamp, signature=signature):
            out.add(team_id)
    return out
