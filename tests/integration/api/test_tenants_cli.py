"""`eve keys|members|secrets|org ...` as a person runs them, against a real API and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant


@pytest.fixture
async def cli(conn, db_url, tmp_path):
    owner = await make_tenant(conn, "cli-org")
    staff = await make_tenant(conn, "cli-ops", operator=True)
    api = start_api(db_url, tmp_path, env={"EVE_SECRETS_KEY": Fernet.generate_key().decode()})
    try:
        api.wait_ready()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVE_")}
        env.update({"XDG_CONFIG_HOME": str(tmp_path / "config"), "NO_COLOR": "1", "COLUMNS": "200",
                    "EVE_API_URL": api.url})

        def eve(*args: str, key: str = owner.api_key, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "eve.cli", *args], capture_output=True, text=True,
                                  env={**env, "EVE_API_KEY": key}, input=stdin, timeout=60)
        eve.staff_key = staff.api_key  # type: ignore[attr-defined]
        yield eve
    finally:
        api.stop()


def test_keys_members_secrets_org_audit(cli):
    r = cli("members", "add", "dev@example.com", "--role", "member")
    assert r.returncode == 0 and "added dev@example.com as member" in r.stdout, r.stderr
    r = cli("keys", "create", "--name", "dev-laptop", "--user", "dev@example.com")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("eve_") and "only time it is shown" in r.stderr
    prefix = token.split("_")[1]
    listing = cli("keys", "list").stdout
    assert prefix in listing and "dev-laptop" in listing and token not in listing
    # the member may not manage keys: one readable line, exit 1, no traceback
    r = cli("keys", "list", key=token)
    assert r.returncode == 1 and "owners and admins" in r.stderr and "Traceback" not in r.stderr
    r = cli("members", "set-role", "dev@example.com", "admin")
    assert r.returncode == 0 and "now admin" in r.stdout
    assert cli("keys", "list", key=token).returncode == 0

    r = cli("secrets", "set", "GH_TOKEN", stdin="ghp_value_from_stdin\n")
    assert r.returncode == 0 and "secret GH_TOKEN set" in r.stdout, r.stderr
    listed = json.loads(cli("secrets", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["GH_TOKEN"] and "ghp_value_from_stdin" not in json.dumps(listed)
    r = cli("secrets", "set", "LD_PRELOAD", stdin="/tmp/x.so-long")
    assert r.returncode == 1 and "reserved" in r.stderr
    assert cli("secrets", "delete", "GH_TOKEN").returncode == 0
    assert cli("secrets", "delete", "GH_TOKEN").returncode == 1

    r = cli("org", "limits", "cli-org", "--max-pending", "3", "--budget", "25", "--max-running-type", "general=2")
    assert r.returncode == 1 and "only operators" in r.stderr  # the owner is no operator
    r = cli("org", "limits", "cli-org", "--max-pending", "3", "--budget", "25", "--max-running-type", "general=2",
            key=cli.staff_key)
    assert r.returncode == 0, r.stderr
    shown = cli("org", "show").stdout
    assert "max pending       3" in shown and "$0.00 of $25.00" in shown and "general=2" in shown
    assert cli("org", "limits", "cli-org", "--clear", "bogus", key=cli.staff_key).returncode == 2

    r = cli("members", "remove", "dev@example.com")
    assert r.returncode == 0 and prefix in r.stdout
    audit = cli("org", "audit", "--json")
    actions = [a["action"] for a in json.loads(audit.stdout)]
    assert actions[:7] == ["member.remove", "limits.set", "secret.delete", "secret.set", "member.role",
                           "api_key.create", "member.add"]
