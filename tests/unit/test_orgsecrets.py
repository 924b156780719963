"""Per-org secrets without a database: names, keys and rotation, the agent env, masking."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken

from eve.errors import ConfigError, ValidationError
from eve.executor.env import build_env
from eve.masking import Masker
from eve.models import Outcome
from eve.orgsecrets import Keyring, TenantEnv, check_name, check_value


@pytest.mark.parametrize("name", ["PATH", "LD_PRELOAD", "EVE_API_TOKEN", "HOME", "lower", "1ABC", "PYTHONPATH",
                                  "BASH_ENV", "NODE_OPTIONS", "LC_ALL", ""])
def test_reserved_or_malformed_names_are_refused(name):
    with pytest.raises(ValidationError):
        check_name(name)


def test_good_names_and_values():
    assert check_name("GH_TOKEN") == "GH_TOKEN"
    with pytest.raises(ValidationError, match="at least 6"):
        check_value("abc")
    with pytest.raises(ValidationError):
        check_value("a\x00bcdefg")


def test_rotation_reencrypts_under_the_first_key_and_old_keys_still_decrypt():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Keyring([old]).encrypt("value-123")
    both = Keyring.from_env({"EVE_SECRETS_KEY": f"{new},{old}"})
    assert both.decrypt(token) == "value-123"
    rotated = both.rotate(token)
    assert Keyring([new]).decrypt(rotated) == "value-123"
    with pytest.raises(InvalidToken):
        Keyring([old]).decrypt(rotated)
    with pytest.raises(ConfigError):
        Keyring(["not-a-key"])
    assert Keyring.from_env({}) is None


def test_key_file(tmp_path):
    path = tmp_path / "secrets.key"
    path.write_text(Fernet.generate_key().decode() + "\n")
    ring = Keyring.from_env({"EVE_SECRETS_KEY_FILE": str(path)})
    assert ring.decrypt(ring.encrypt("abcdefg")) == "abcdefg"


def _env(tenant):
    worker = {"PATH": "/usr/bin", "ANTHROPIC_API_KEY": "platform", "ANTHROPIC_BASE_URL": "http://x",
              "GH_TOKEN": "gh", "EVE_API_URL": "http://api", "DATABASE_URL": "postgres://"}
    env, _ = build_env(worker, request_id="r", org_id="o", user_id="u", worker_type="general", home="/h",
                       context={}, tenant=tenant, api=("http://api", "everq_token"))
    return env


def test_secrets_join_the_agent_env_and_never_override_the_platform():
    env = _env(TenantEnv(secrets={"DEPLOY_KEY": "s3cret!", "PATH": "/evil", "EVE_REQUEST_ID": "x",
                                  "LD_PRELOAD": "/evil.so"}))
    assert env["DEPLOY_KEY"] == "s3cret!"
    assert env["PATH"].endswith(":/usr/bin") and "/evil" not in env["PATH"]  # eve's bin dir, then the worker's PATH
    assert env["EVE_REQUEST_ID"] == "r" and "LD_PRELOAD" not in env
    assert env["ANTHROPIC_API_KEY"] == "platform" and env["GH_TOKEN"] == "gh"  # the default: platform keys reach it
    assert "DATABASE_URL" not in env


def test_without_platform_keys_only_the_orgs_own_credentials_remain():
    env = _env(TenantEnv(secrets={"ANTHROPIC_API_KEY": "orgs-own-key"}, platform_keys=False))
    assert env["ANTHROPIC_API_KEY"] == "orgs-own-key"
    assert "GH_TOKEN" not in env and env["ANTHROPIC_BASE_URL"] == "http://x" and env["EVE_API_URL"] == "http://api"
    assert env["EVE_API_TOKEN"] == "everq_token"  # the agent's own credential survives the org's env


def test_masker_masks_events_and_outcomes():
    m = Masker({"A": "value-aaaa", "AB": "value-aaaa-bbbb", "SHORT": "abc"})
    assert m.text("x value-aaaa-bbbb y value-aaaa") == "x ***AB*** y ***A***"
    assert m.any({"k": ["value-aaaa", 1], "value-aaaa": None}) == {"k": ["***A***", 1], "***A***": None}
    assert m.text("abc") == "abc"  # too short to mask
    o = m.outcome(Outcome(status="failed", output={"result": "value-aaaa"}, summary="value-aaaa", error="value-aaaa"))
    assert (o.output, o.summary, o.error) == ({"result": "***A***"}, "***A***", "***A***")
    assert not Masker({})
