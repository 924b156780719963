"""Slack installations as an operator makes them, and what each role can see of them."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from eve.cli.slack import up_components
from tests.integration.test_least_privilege import split  # noqa: F401 - the login-role fixture
from tests.support.fake_slack import slash_command
from tests.support.slackstack import SIGNING_SECRET, SLACK_USER, TEAM, make_slack_stack
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for

JWT = "j" * 48
BOT = "xoxb-1111-2222-verysecretbottoken"
SIGNING = "0123456789abcdef0123456789abcdef"


def eve(db_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "JWT_SECRET", "DATABASE_URL"))}
    return subprocess.run([sys.executable, "-m", "eve.cli", *args], capture_output=True, text=True, timeout=60,
                          env={**base, "DATABASE_URL": db_url, **env})


async def test_connect_stores_secrets_encrypted_and_never_prints_them(conn, db_url):
    await make_tenant(conn, "acme")
    r = eve(db_url, "admin", "slack", "connect", "--org", "acme", "--team", "T0ACME", "--default-type",
            "code-review", JWT_SECRET=JWT, SLACK_BOT_TOKEN=BOT, SLACK_SIGNING_SECRET=SIGNING,
            SLACK_APP_TOKEN="xapp-1-secretapptoken")
    assert r.returncode == 0, r.stderr
    assert "connected Slack team T0ACME to org acme" in r.stdout and "Socket Mode" in r.stdout
    for secret in (BOT, SIGNING, "xapp-1-secretapptoken"):
        assert secret not in r.stdout + r.stderr
    listed = eve(db_url, "admin", "slack", "list")
    assert listed.returncode == 0 and "T0ACME\torg=acme\tdefault-type=code-review\tsocket-mode" in listed.stdout
    assert BOT not in listed.stdout and SIGNING not in listed.stdout
    row = await (await conn.execute("SELECT bot_token, signing_secret, app_token FROM eve.slack_secrets")).fetchone()
    for blob in row.values():
        assert b"secret" not in bytes(blob)  # ciphertext only


@pytest.mark.parametrize("args, env, message", [
    (["--team", "not-a-team"], {}, "is not a Slack team id"),
    (["--team", "T0ACME"], {"SLACK_BOT_TOKEN": "xoxp-user-token"}, "Bot User OAuth Token"),
    (["--team", "T0ACME", "--org", "nope"], {}, "organization 'nope' not found"),
    (["--team", "T0ACME", "--default-type", "nope"], {}, "Invalid worker type: nope"),
    (["--team", "T0ACME"], {"JWT_SECRET": ""}, "JWT_SECRET must be set"),
])
async def test_connect_mistakes_are_one_readable_line(conn, db_url, args, env, message):
    await make_tenant(conn, "acme")
    base = {"JWT_SECRET": JWT, "SLACK_BOT_TOKEN": BOT, "SLACK_SIGNING_SECRET": SIGNING}
    org = [] if "--org" in args else ["--org", "acme"]
    r = eve(db_url, "admin", "slack", "connect", *org, *args, **{**base, **env})
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert await (await conn.execute("SELECT count(*) AS n FROM eve.slack_installations")).fetchone() == {"n": 0}


async def test_link_maps_a_slack_user_whose_email_differs(conn, db_url, tmp_path):
    stack = await make_slack_stack(conn, db_url, tmp_path)
    try:
        stack.fake.add_user("U0BOB", "bob@personal.example")  # verified, but not his eve email
        r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user="U0BOB", text="hi", trigger_id="t1")
        assert "ask an operator to link you" in r.json()["text"]
        bad = eve(db_url, "admin", "slack", "link", "--team", TEAM, "--slack-user", "U0BOB", "--email",
                  "stranger@example.com")
        assert bad.returncode == 1 and "not a member of its org" in bad.stderr
        ok = eve(db_url, "admin", "slack", "link", "--team", TEAM, "--slack-user", "U0BOB", "--email",
                 stack.tenant.email)
        assert ok.returncode == 0, ok.stderr
        r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user="U0BOB", text="hi", trigger_id="t2")
        assert r.json()["text"].startswith("Queued #")
        row = await (await conn.execute("SELECT user_id FROM eve.orchestration_requests")).fetchone()
        assert row["user_id"] == stack.tenant.user_id
    finally:
        stack.stop()


async def test_api_role_reads_no_secrets_and_members_see_only_their_org(conn, db_url):
    acme = await make_tenant(conn, "acme")
    other = await make_tenant(conn, "other")
    r = eve(db_url, "admin", "slack", "connect", "--org", "acme", "--team", "T0ACME", JWT_SECRET=JWT,
            SLACK_BOT_TOKEN=BOT, SLACK_SIGNING_SECRET=SIGNING)
    assert r.returncode == 0, r.stderr
    with psycopg.connect(db_url, autocommit=True) as c:
        for statement in ("SELECT * FROM eve.slack_secrets", "SELECT bot_token FROM eve.slack_secrets"):
            with c.transaction():
                c.execute("SET LOCAL ROLE eve_api")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    c.execute(statement)
        with c.transaction():
            c.execute("SET LOCAL ROLE eve_api")
            c.execute("SELECT set_config('eve.user_id', %s, true)", (str(other.user_id),))
            assert c.execute("SELECT team_id FROM eve.slack_installations").fetchall() == []
            c.execute("SELECT set_config('eve.user_id', %s, true)", (str(acme.user_id),))
            assert c.execute("SELECT team_id FROM eve.slack_installations").fetchall() == [("T0ACME",)]


def test_eve_up_runs_the_slack_daemon_only_when_a_workspace_is_connected(db_url):
    assert eve(db_url, "admin", "org", "create", "acme").returncode == 0
    assert up_components(db_url, ("api-dsn", "worker-dsn"), {"PATH": "/bin"}, JWT) == []
    eve(db_url, "admin", "slack", "connect", "--org", "acme", "--team", "T0ACME", JWT_SECRET=JWT,
        SLACK_BOT_TOKEN=BOT, SLACK_SIGNING_SECRET=SIGNING)
    [(name, argv, env)] = up_components(db_url, ("api-dsn", "worker-dsn"), {"PATH": "/bin"}, JWT)
    assert name == "slack" and argv[1:] == ["-m", "eve.daemons.slack"]
    assert env == {"PATH": "/bin", "DATABASE_URL": "worker-dsn", "EVE_API_DATABASE_URL": "api-dsn",
                   "JWT_SECRET": JWT}


async def test_slack_works_on_the_least_privilege_login_roles(conn, db_url, tmp_path, split):  # noqa: F811
    """The API as a member of eve_api only; the daemon posting as service_role (workers' role)."""
    stack = await make_slack_stack(conn, db_url, tmp_path, api_dsn=split["api"])
    try:
        r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, text="hi", trigger_id="t1")
        assert r.json()["text"].startswith("Queued #"), r.text
        stack.start_daemon(split["worker"], EVE_API_DATABASE_URL=split["api"])
        wait_for(lambda: stack.fake.accepted("chat.postMessage"), 30, f"the root\n{stack.daemon_output()}")

        def thread_ts() -> str | None:
            with psycopg.connect(db_url) as c:
                return c.execute("SELECT reply_to->>'thread_ts' FROM eve.orchestration_requests").fetchone()[0]
        assert wait_for(thread_ts, 30, "reply_to.thread_ts") == stack.fake.accepted("chat.postMessage")[0]["_ts"]
    finally:
        stack.stop()
