"""`eve hitl list|show|answer` as a person runs them, and `eve ask` without a request token."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.api.test_hitl_api import _waiting_question

pytestmark = pytest.mark.asyncio


@pytest.fixture
def cli(api, alice, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVE_")}
    env.update({"XDG_CONFIG_HOME": str(tmp_path / "config"), "NO_COLOR": "1", "COLUMNS": "200",
                "EVE_API_URL": api.url, "EVE_API_KEY": alice.tenant.api_key})

    def eve(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eve.cli", *args], capture_output=True, text=True,
                              env={**env, **extra}, timeout=60)
    return eve


async def test_list_show_answer_with_a_short_id(cli, conn, alice):
    req, q = await _waiting_question(conn, alice.tenant)
    qid = str(q["id"])
    r = cli("hitl", "list")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()[:2]
    assert header.split() == ["ID", "STATUS", "ASKED", "REQUEST", "ORG", "QUESTION", "OPTIONS"]
    assert row.startswith(qid[:8]) and "pending" in row and "Deploy v2 to production?" in row and "yes / no" in row

    r = cli("hitl", "show", qid[:8])
    assert r.returncode == 0, r.stderr
    assert "Deploy v2 to production?" in r.stdout and f"eve hitl answer {qid[:8]} ANSWER" in r.stdout

    r = cli("hitl", "answer", qid[:8], "perhaps")
    assert r.returncode == 2 and "'perhaps' is not one of the options: yes, no" in r.stderr
    assert "Traceback" not in r.stderr

    r = cli("hitl", "answer", qid[:8], "no")
    assert r.returncode == 0, r.stderr
    assert f"answered {qid[:8]}: no — request {str(req.id)[:8]} resumes" in r.stdout

    r = cli("hitl", "answer", qid, "yes")
    assert r.returncode == 1 and f"already answered by {alice.tenant.email}" in r.stderr

    assert cli("hitl", "list").stdout.strip() == "no pending questions"
    shown = json.loads(cli("hitl", "show", qid, "--json").stdout)
    assert shown["status"] == "answered" and shown["answer"] == "no"
    listed = json.loads(cli("hitl", "list", "--status", "all", "--json").stdout)
    assert listed["total"] == 1

    r = cli("hitl", "show", "ffffffff")
    assert r.returncode == 1 and "no question id starts with ffffffff" in r.stderr
    r = cli("hitl", "list", "--status", "open")
    assert r.returncode == 1 and "unknown question status 'open'" in r.stderr


async def test_ask_needs_a_request_token(cli):
    r = cli("ask", "Deploy?", "--option", "yes", "--option", "no")
    assert r.returncode == 2 and "EVE_API_TOKEN" in r.stderr
    r = cli("ask", "Deploy?", "--timeout", "soon", EVE_API_TOKEN="x")
    assert r.returncode == 2 and "not a duration" in r.stderr
    r = cli("ask", "Deploy?", EVE_API_TOKEN="not-a-token")
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.startswith("error:")
