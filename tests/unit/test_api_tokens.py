"""The API's verified-token cache (daemons/api/tokens.py): the same answers as eve.auth.verify."""

from __future__ import annotations

import time
import uuid

import pytest

from eve import auth
from eve.daemons.api import tokens
from eve.errors import AuthError

SECRET = "s" * 40


def _token(ttl_s: int = 3600) -> str:
    return auth.issue(SECRET, user_id=uuid.uuid4(), org_id=uuid.uuid4(), role="member", operator=False,
                      ttl_s=ttl_s)[0]


@pytest.fixture
def verifications(monkeypatch) -> list[str]:
    seen: list[str] = []

    def counting(secret: str, token: str) -> auth.Caller:
        seen.append(token)
        return auth.verify(secret, token)

    monkeypatch.setattr(tokens, "verify", counting)
    monkeypatch.setattr(tokens, "_cache", {})
    return seen


def test_a_verified_token_is_checked_once_until_it_expires(verifications):
    tok = _token()
    first = tokens.verify_cached(SECRET, tok)
    assert tokens.verify_cached(SECRET, tok) == first == auth.verify(SECRET, tok)
    assert verifications == [tok]
    tokens.verify_cached(SECRET, tok, now=time.time() + 3601)  # past its exp the cache does not answer
    assert verifications == [tok, tok]


def test_failures_are_never_remembered_and_the_secret_is_part_of_the_key(verifications):
    tok = _token()
    for _ in range(2):
        with pytest.raises(AuthError):
            tokens.verify_cached(SECRET, tok[:-2] + "xx")
    tokens.verify_cached(SECRET, tok)
    with pytest.raises(AuthError):
        tokens.verify_cached("t" * 40, tok)  # a rotated secret: verified again, and refused
    assert len(verifications) == 4
