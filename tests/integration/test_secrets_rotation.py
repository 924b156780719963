"""Key rotation of per-org secrets against the real database: NEW,OLD → `eve admin secrets-rotate` →
NEW alone decrypts everything; a worker loads only its own org's secrets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from eve.errors import ConfigError

from eve.orgsecrets import Keyring, key_env, load_for_org
from tests.support.tenants import make_tenant


async def test_rotate_then_drop_the_old_key(conn, db_url, tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    a, b = await make_tenant(conn, "rot-a"), await make_tenant(conn, "rot-b")
    for t, value in ((a, "value-of-a-123"), (b, "value-of-b-456")):
        await conn.execute("INSERT INTO eve.org_secrets (org_id, name, ciphertext) VALUES (%s, 'TOKEN', %s)",
                           (t.org_id, Keyring([old]).encrypt(value)))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("EVE_")},
           "DATABASE_URL": db_url, "EVE_SECRETS_KEY": f"{new},{old}"}
    r = subprocess.run([sys.executable, "-m", "eve.cli", "admin", "secrets-rotate"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "re-encrypted 2 secret(s)" in r.stdout, r.stderr
    only_new = Keyring([new])
    loaded = await load_for_org(conn, only_new, a.org_id)
    assert loaded.secrets == {"TOKEN": "value-of-a-123"} and loaded.platform_keys  # its own org's only
    assert (await load_for_org(conn, only_new, b.org_id)).secrets == {"TOKEN": "value-of-b-456"}
    # without a key the rotation refuses to start (usage error), and so does a worker for an org with secrets
    env.pop("EVE_SECRETS_KEY")
    r = subprocess.run([sys.executable, "-m", "eve.cli", "admin", "secrets-rotate"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "EVE_SECRETS_KEY" in r.stderr and "Traceback" not in r.stderr
    # a worker without the key does not run the org's agents without their secrets
    with pytest.raises(ConfigError, match="no secrets key"):
        await load_for_org(conn, None, a.org_id)
    with pytest.raises(ConfigError, match="cannot be decrypted"):  # the old key alone no longer works
        await load_for_org(conn, Keyring([old]), a.org_id)


def test_eve_up_key_file_is_created_once_and_private(tmp_path):
    env = key_env(tmp_path / "data", {"PATH": "/usr/bin"})
    path = tmp_path / "data" / "secrets.key"
    assert env["EVE_SECRETS_KEY_FILE"] == str(path) and oct(path.stat().st_mode & 0o777) == "0o600"
    first = path.read_text()
    assert key_env(tmp_path / "data", {})["EVE_SECRETS_KEY_FILE"] == str(path) and path.read_text() == first
    assert key_env(tmp_path / "data", {"EVE_SECRETS_KEY": "k"}) == {"EVE_SECRETS_KEY": "k"}  # configured: kept
    assert Keyring.from_env(env).decrypt(Keyring.from_env(env).encrypt("abcdefg")) == "abcdefg"
