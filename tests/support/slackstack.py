"""A Slack test stack: an org with a connected workspace, the fake Slack Web API, the real
API process (HTTP mode under /slack/events) and, when asked, the real `eve slack run` daemon."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from eve.slack import admin as slack_admin
from eve.slack import secretbox
from tests.support.apiserver import ApiProcess, start_api
from tests.support.fake_slack import FakeSlack
from tests.support.tenants import Tenant, make_tenant

TEAM = "T0TEST"
SLACK_USER = "U0ALICE"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
# a second workspace of another org (make_slack_stack(..., second_team=True)): cross-team checks
TEAM_2 = "T0GLOBEX"
SLACK_USER_2 = "U0BOB"
SIGNING_SECRET_2 = "0c1d2e3f405162738495a6b7c8d9e0f1"


@dataclass
class SlackStack:
    tenant: Tenant
    fake: FakeSlack
    api: ApiProcess
    jwt_secret: str
    db_url: str
    tmp: Path
    daemon: subprocess.Popen[str] | None = None
    other: Tenant | None = None  # the org of TEAM_2, when the stack has a second installation

    def env(self) -> dict[str, str]:
        return {"EVE_SLACK_API_URL": self.fake.url, "JWT_SECRET": self.jwt_secret}

    def start_daemon(self, dsn: str | None = None, **extra: str) -> subprocess.Popen[str]:
        log = open(self.tmp / "slack-daemon.log", "w")  # noqa: SIM115 - the child owns it
        env = {**os.environ, "DATABASE_URL": dsn or self.db_url, "PYTHONUNBUFFERED": "1", **self.env(),
               "EVE_SLACK_POLL_INTERVAL": "0.2", "EVE_SLACK_PROGRESS_INTERVAL": "0.5", **extra}
        self.daemon = subprocess.Popen([sys.executable, "-m", "eve.daemons.slack"], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, text=True)
        log.close()
        return self.daemon

    def daemon_output(self) -> str:
        path = self.tmp / "slack-daemon.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(10)
        self.api.stop()
        self.fake.stop()


async def make_slack_stack(conn: psycopg.AsyncConnection[Any], db_url: str, tmp: Path, *,
                           slug: str = "acme", api_dsn: str | None = None,
                           app_token: str | None = None, second_team: bool = False) -> SlackStack:
    """`second_team`: also org "globex" with workspace TEAM_2 (its own signing secret and linked
    user SLACK_USER_2) on the same API, so a test can sign for one team and name the other."""
    tenant = await make_tenant(conn, slug)
    jwt_secret = secrets.token_hex(32)
    await slack_admin.connect(conn, secretbox.key_from(jwt_secret), org=slug, team_id=TEAM,
                              bot_token="xoxb-test-bot-token", signing_secret=SIGNING_SECRET, app_token=app_token,
                              default_type="general")
    other = None
    if second_team:
        other = await make_tenant(conn, "globex")
        await slack_admin.connect(conn, secretbox.key_from(jwt_secret), org="globex", team_id=TEAM_2,
                                  bot_token="xoxb-globex-bot-token", signing_secret=SIGNING_SECRET_2, app_token=None,
                                  default_type="general")
    fake = FakeSlack().start()
    fake.add_user(SLACK_USER, tenant.email)
    if other is not None:
        fake.add_user(SLACK_USER_2, other.email)
    api = start_api(api_dsn or db_url, tmp, jwt_secret=jwt_secret, env={"EVE_SLACK_API_URL": fake.url})
    stack = SlackStack(tenant=tenant, fake=fake, api=api, jwt_secret=jwt_secret, db_url=db_url, tmp=tmp,
                       other=other)
    try:
        api.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack
