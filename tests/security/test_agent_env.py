"""Threat: an agent (hostile code with a shell) reads the worker's platform secrets from its
environment — EVE_SECRETS_KEY decrypts every org's secrets, DATABASE_URL and JWT_SECRET are
the platform itself. The agent's environment is an allowlist (eve/executor/env.py): of the
worker's EVE_* variables none passes, whatever its name; eve sets the request's identity itself."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import orgsecrets, queue
from eve.executor.env import build_env
from tests.e2e.conftest import claude_bin, fake_api, variant_bin  # noqa: F401 - the real Claude Code CLI's fixtures
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker

ROOT = Path(__file__).resolve().parents[2]
# What eve itself gives the agent (its request's identity, its own token): not the worker's copy.
SET_BY_EVE = {"EVE_REQUEST_ID", "EVE_ORG_ID", "EVE_USER_ID", "EVE_WORKER_TYPE", "EVE_API_URL", "EVE_API_TOKEN"}
NOT_EVE = ("DATABASE_URL", "JWT_SECRET", "PGPASSWORD", "DB_PASSWORD", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET",
           "SLACK_APP_TOKEN")


def platform_variables() -> list[str]:
    """Every EVE_* name the platform reads (found in its source, so a new one is covered the day
    it is added), and the non-EVE secrets a worker's host may hold."""
    names: set[str] = set()
    for path in [*(ROOT / "eve").rglob("*.py"), *(ROOT / "daemons").rglob("*.py")]:
        names |= set(re.findall(r"\bEVE_[A-Z0-9]+(?:_[A-Z0-9]+)*\b", path.read_text()))
    names = {n for n in names if not n.startswith(("EVE_CTX", "EVE_VARIANT_"))}
    assert {"EVE_SECRETS_KEY", "EVE_SECRETS_KEY_FILE", "EVE_METRICS_TOKEN", "EVE_API_DATABASE_URL"} <= names
    return sorted(names | set(NOT_EVE))


def test_no_platform_variable_of_the_worker_reaches_the_agent():
    worker_env = {"PATH": "/usr/bin:/bin", "ANTHROPIC_API_KEY": "sk-provider"}
    planted = {name: f"{name.lower()}-{secrets.token_hex(8)}" for name in platform_variables()}
    worker_env.update(planted)
    # an org whose secret tries to pass for the key (the API refuses the name; apply() must too)
    tenant = orgsecrets.TenantEnv(secrets={"EVE_SECRETS_KEY": "org-chosen-value", "ORG_TOKEN": "org-1234567890"})
    env, _ = build_env(worker_env, request_id="r1", org_id="o1", user_id="u1", worker_type="general", home="/h",
                       context={"secretsKey": "ctx", "EVE_SECRETS_KEY": "ctx"}, api=("http://api", "eve_rt_x"),
                       tenant=tenant)
    leaked = {name for name, value in planted.items() if any(value in v for v in env.values())}
    assert not leaked, f"the agent got the worker's {sorted(leaked)}"
    assert {k for k in env if k.startswith("EVE_") and not k.startswith("EVE_CTX_")} == SET_BY_EVE
    assert "EVE_SECRETS_KEY" not in env and env["ORG_TOKEN"] == "org-1234567890"
    assert env["ANTHROPIC_API_KEY"] == "sk-provider"  # the allowlist still works


@pytest.mark.e2e
async def test_a_real_agent_finds_no_platform_secret_in_its_environment_or_its_sandboxs(
        db_url, conn, tmp_path, variant_bin):
    """The same through a real worker and sandbox: the agent dumps its environment and those of
    every process it can see (the sandbox's PID 1 keeps the environment it was started with)."""
    planted = {"EVE_SECRETS_KEY": orgsecrets.new_key(), "EVE_METRICS_TOKEN": secrets.token_hex(20),
               "JWT_SECRET": secrets.token_hex(20), "EVE_API_DATABASE_URL": f"postgresql://x:{secrets.token_hex(8)}@h/d",
               "SLACK_SIGNING_SECRET": secrets.token_hex(16)}
    tenant = await make_tenant(conn, "env-probe")
    # events cut long tool output: the agent writes its dump into the workspace, which is kept
    w = start_worker(db_url, tmp_path, path_prepend=variant_bin, env=planted, args=["--keep-workspaces"])
    try:
        w.wait_healthy()
        req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt="[[bash: (env; for f in /proc/[0-9]*/environ; do echo == $f; xargs -0 -n1 echo < $f; done) "
                                         "> dump.txt; wc -l dump.txt]]")
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as c:
            res = wait_for(lambda: c.execute("SELECT status, error FROM eve.orchestration_results WHERE request_id = %s",
                                             (req.id,)).fetchone(), 90, "the result")
    finally:
        w.stop()
    assert res["status"] == "success", res
    text = (w.workspace_root / str(req.id) / "dump.txt").read_text(errors="replace")
    assert f"EVE_REQUEST_ID={req.id}" in text and "== /proc/1/environ" in text  # env and /proc were read
    assert "\nDATABASE_URL=" not in f"\n{text}" and db_url not in text
    for name, value in planted.items():
        assert value not in text, f"the agent read the worker's {name}"
