"""Wake-ups by LISTEN/NOTIFY, proved with a poll too long to hide them, and cancel of a running request.

The worker here polls once a minute and renews its lease every 40 s, so a pickup or a cancel
that arrives within the deadlines below came by NOTIFY (`eve_requests`, `eve_cancel`), not by
a timer. Cancels go through the real API and the real CLI, and the agent is busy in a Bash
tool (`sleep`) when they come: both the agent and the tool's process must be gone after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support.apiserver import ApiProcess, start_api
from tests.support.tenants import Tenant, make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import WorkerProcess, start_worker

pytestmark = pytest.mark.e2e

POLL_S = 60  # the worker's poll interval: every deadline below is well under it
PICKUP_S = 15
SLEEPER = "[[bash: tail -f /dev/null]]"  # the agent runs a tool that never ends by itself
TOOL_COMM = "tail"


def one(dsn: str, sql: str, *args: Any) -> dict[str, Any] | None:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        return c.execute(sql, args).fetchone()


def processes_in(workspace: Path) -> list[str]:
    """Program names of the processes whose cwd is inside the workspace (the agent, its tools)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(workspace)):
                found.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            pass
    return found


@pytest.fixture
async def tenant(conn) -> Tenant:
    return await make_tenant(conn, "wake")


@pytest.fixture
def stack(db_url: str, tmp_path: Path, variant_bin: Path) -> Iterator[tuple[ApiProcess, WorkerProcess]]:
    api = start_api(db_url, tmp_path)
    worker = start_worker(db_url, tmp_path, path_prepend=variant_bin, slots=2,
                          env={"EVE_POLL_INTERVAL": str(POLL_S), "EVE_LEASE_SECONDS": "120"})
    try:
        api.wait_ready()
        worker.wait_healthy()
        # the worker's first claim (at start) has happened: from here on it sleeps for POLL_S
        wait_for(lambda: "started" in worker.output(), 30, "the worker's start line")
        yield api, worker
    finally:
        worker.stop()
        api.stop()


def token(api: ApiProcess, tenant: Tenant) -> dict[str, str]:
    r = httpx.post(f"{api.url}/auth/token", json={"apiKey": tenant.api_key})
    return {"Authorization": f"Bearer {r.json()['token']}"}


def submit(api: ApiProcess, auth: dict[str, str], prompt: str) -> str:
    r = httpx.post(f"{api.url}/requests", json={"workerType": "general", "prompt": prompt}, headers=auth)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_running_tool(db_url: str, worker: WorkerProcess, rid: str) -> Path:
    ws = worker.workspace_root / rid
    wait_for(lambda: one(db_url, "SELECT 1 FROM eve.request_events WHERE request_id = %s AND kind = 'tool_call'",
                         rid), PICKUP_S + 30, "the agent to call Bash")
    wait_for(lambda: TOOL_COMM in processes_in(ws), 30, "the tool's process to run")
    assert one(db_url, "SELECT status FROM eve.orchestration_requests WHERE id = %s", rid) == {
        "status": "processing"}
    return ws


def assert_cancelled_and_gone(db_url: str, rid: str, ws: Path) -> None:
    res = wait_for(lambda: one(db_url, "SELECT status FROM eve.orchestration_results WHERE request_id = %s", rid),
                   PICKUP_S, "the cancelled result (the cancel must arrive by NOTIFY)")
    assert res == {"status": "cancelled"}
    wait_for(lambda: not processes_in(ws), 15, "the agent and its tool to be gone")
    assert one(db_url, "SELECT status FROM eve.orchestration_requests WHERE id = %s", rid) == {"status": "cancelled"}


def test_a_new_request_is_picked_up_by_notify_not_by_the_poll(db_url, tenant, stack):
    api, worker = stack
    auth = token(api, tenant)
    for _ in range(2):  # twice: the second wake-up finds the worker back asleep
        rid = submit(api, auth, "[[text: quick]]")
        wait_for(lambda: one(db_url, "SELECT 1 FROM eve.request_events WHERE request_id = %s AND kind = 'claimed'",
                             rid), PICKUP_S, f"pickup well within the {POLL_S} s poll")
        wait_for(lambda: one(db_url, "SELECT 1 FROM eve.orchestration_results WHERE request_id = %s", rid), 60,
                 "the result")


def test_cancel_a_running_request_through_the_api(db_url, tenant, stack):
    api, worker = stack
    auth = token(api, tenant)
    rid = submit(api, auth, SLEEPER)
    ws = wait_running_tool(db_url, worker, rid)
    r = httpx.post(f"{api.url}/requests/{rid}/cancel", headers=auth)
    assert r.status_code == 202 and r.json()["cancelRequestedAt"] is not None, r.text
    assert_cancelled_and_gone(db_url, rid, ws)
    assert httpx.post(f"{api.url}/requests/{rid}/cancel", headers=auth).status_code == 409


def test_cancel_a_running_request_through_the_cli(db_url, tenant, stack, tmp_path):
    api, worker = stack
    rid = submit(api, token(api, tenant), SLEEPER)
    ws = wait_running_tool(db_url, worker, rid)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVE_")}
    env.update({"EVE_API_URL": api.url, "EVE_API_KEY": tenant.api_key, "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
                "NO_COLOR": "1"})
    r = subprocess.run([sys.executable, "-m", "eve.cli", "cancel", rid], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and rid in r.stdout, r.stdout + r.stderr
    assert_cancelled_and_gone(db_url, rid, ws)
    shown = subprocess.run([sys.executable, "-m", "eve.cli", "request", "get", rid, "--json"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert json.loads(shown.stdout)["status"] == "cancelled"
