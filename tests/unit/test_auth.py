"""JWT verification refuses every token it did not issue, and the API refuses a weak secret.

Each token below is signed correctly unless the case says otherwise, so the only reason
for a 401 is the one the case names. The last test starts the real API process.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from eve import auth
from eve.errors import AuthError, ConfigError

SECRET = "s" * 32
def now() -> datetime:
    """Read at each use: a module-level timestamp goes stale when this file runs late in a long session."""
    return datetime.now(timezone.utc)


def claims(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sub": str(uuid.uuid4()), "org": str(uuid.uuid4()), "role": "member", "op": False,
        "iat": int(now().timestamp()), "exp": int((now() + timedelta(minutes=5)).timestamp()), "jti": uuid.uuid4().hex}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def test_a_token_we_issued_verifies():
    tok, _ = auth.issue(SECRET, user_id=uuid.uuid4(), org_id=uuid.uuid4(), role="owner", operator=True)
    caller = auth.verify(SECRET, tok)
    assert caller.role == "owner" and caller.operator is True
    assert auth.verify(SECRET, jwt.encode(claims(), SECRET, "HS256")).role == "member"  # the baseline below


@pytest.mark.parametrize("missing", ["iat", "sub", "jti", "org", "exp"])
def test_a_token_missing_a_required_claim_is_refused(missing):
    token = jwt.encode(claims(**{missing: None}), SECRET, "HS256")
    with pytest.raises(AuthError, match="invalid or expired credentials"):
        auth.verify(SECRET, token)


@pytest.mark.parametrize("bad", [{"sub": "not-a-uuid"}, {"org": "not-a-uuid"}, {"org": 5}])
def test_a_malformed_identity_claim_is_refused(bad):
    with pytest.raises(AuthError):
        auth.verify(SECRET, jwt.encode(claims(**bad), SECRET, "HS256"))


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_another_hmac_algorithm_with_the_right_secret_is_refused(alg):
    token = jwt.encode(claims(), SECRET, alg)
    assert jwt.decode(token, SECRET, algorithms=[alg])["sub"]  # a valid token, just not HS256
    with pytest.raises(AuthError):
        auth.verify(SECRET, token)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg):
    def b64(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    for token in (f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}.",
                  f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims())}.c2ln"):
        with pytest.raises(AuthError):
            auth.verify(SECRET, token)


def test_expired_and_future_dated_tokens_are_refused():
    past = claims(exp=int((now() - timedelta(seconds=5)).timestamp()))
    with pytest.raises(AuthError):
        auth.verify(SECRET, jwt.encode(past, SECRET, "HS256"))
    future = claims(iat=int((now() + timedelta(hours=1)).timestamp()))
    with pytest.raises(AuthError):
        auth.verify(SECRET, jwt.encode(future, SECRET, "HS256"))


@pytest.mark.parametrize("secret", [None, "", "x" * 31, "é" * 15])  # "é" is 2 bytes: 30 bytes
def test_a_short_secret_is_refused(secret):
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        auth.check_secret(secret)
    assert auth.check_secret("é" * 16) == "é" * 16  # 32 bytes: counted in bytes, not characters


@pytest.mark.parametrize("secret", ["", "x" * 31])
def test_the_api_refuses_to_start_with_a_short_secret(secret):
    env = {**os.environ, "DATABASE_URL": "postgresql://127.0.0.1:1/none", "JWT_SECRET": secret}
    r = subprocess.run([sys.executable, "-m", "eve.daemons.api", "--port", "1"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert "JWT_SECRET must be set to at least 32 bytes" in r.stderr and "Traceback" not in r.stderr
