"""The worker's workspaces of parked requests: the start-up sweep spares a request that waits
(its session resumes there), and a waiting request that is cancelled loses its workspace —
at once through eve_cancel when a worker of its host listens (0019), else at the next start."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from eve import queue, waiting
from eve.daemons.worker.daemon import Worker, WorkerConfig
from eve.executor.sandbox import Runtime
from eve.models import Outcome
from tests.integration.api.conftest import client_for
from tests.support.apiserver import start_api
from tests.support.parking import park, park_on_a_child
from tests.support.tenants import Tenant, make_tenant
from tests.support.waiting import async_wait_for, wait_for
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.asyncio


async def _parked(conn: Any, tenant: Tenant, root: Path) -> Any:
    """A request parked as a worker leaves it: waiting on a child, its session stored, its
    workspace under `root`. Both are code-review requests: the general worker under test
    claims neither (a parked request's workspace is on its host, whatever its type)."""
    parent, _ = await park_on_a_child(conn, tenant, worker_type="code-review")
    workspace = root / str(parent.id)
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "notes.txt").write_text("the agent's work")
    status = await waiting.park(conn, request_id=parent.id, org_id=tenant.org_id, worker_id="w0",
                                session_id="s-1234567", transcript=b"gz", transcript_path="projects/x/s.jsonl",
                                archive=b"tar", host=socket.gethostname(), workspace_path=str(workspace),
                                outcome=Outcome(status="success"))
    assert status == "waiting"
    return parent


async def _start_up(db_url: str, root: Path, **config: Any) -> None:
    """A worker's start-up (its sweep included) in this process, then its pool closed."""
    worker = Worker(WorkerConfig(dsn=db_url, worker_type="general", workspace_root=root, health_port=None,
                                 sandbox="none", worker_id="sweeper", **config))
    worker.runtime = Runtime(mode="none")
    await worker.pool.open()
    try:
        await worker._start_up()
    finally:
        await worker.pool.close()


async def _session_rows(conn: Any, request_id: Any) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM eve.request_sessions WHERE request_id = %s", (request_id,))
    return (await cur.fetchone())["n"]


async def test_sweep_keeps_a_waiting_requests_workspace(db_url, conn, tmp_path):
    tenant = await make_tenant(conn, "sweep")
    parent, _ = await park_on_a_child(conn, tenant, child_type="code-review")
    other = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                prompt="failed long ago")
    assert await park(conn, parent.id) == "waiting"
    root = tmp_path / "ws"
    old = time.time() - 3600
    for rid in (parent.id, other.id):
        (root / str(rid)).mkdir(parents=True)
        os.utime(root / str(rid), (old, old))
    await _start_up(db_url, root, keep_failed_s=60)
    assert (root / str(parent.id)).is_dir()  # waiting: kept however old
    assert not (root / str(other.id)).exists()  # past keep_failed_s: swept


async def test_cancelling_a_waiting_request_removes_its_workspace_and_session_at_once(db_url, conn, tmp_path):
    """Through the API (eve_api writes the cancel) to a running worker process of the same host."""
    tenant = await make_tenant(conn, "cancel-parked")
    api = start_api(db_url, tmp_path)
    worker = start_worker(db_url, tmp_path, name="parked-host", env={"EVE_POLL_INTERVAL": "60"})
    try:
        api.wait_ready()
        worker.wait_healthy()

        async def listening() -> bool:  # so what removes the workspace below is the notification
            cur = await conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND query = 'LISTEN eve_cancel'")
            return await cur.fetchone() is not None

        await async_wait_for(listening, 30, "the worker to LISTEN on eve_cancel")
        parent = await _parked(conn, tenant, worker.workspace_root)
        decoy = await _parked(conn, tenant, worker.workspace_root)  # waits on: its workspace must stay
        assert await _session_rows(conn, parent.id) == 1
        alice = client_for(api, tenant)
        r = alice.http.post(f"/requests/{parent.id}/cancel")
        assert r.status_code == 202 and r.json()["status"] == "cancelled", r.text
        assert await _session_rows(conn, parent.id) == 0  # in the cancel's own transaction (0014)

        async def gone() -> bool:
            return not (worker.workspace_root / str(parent.id)).exists()

        await async_wait_for(gone, 15, "the worker to remove the cancelled request's workspace")  # poll is 60 s
        wait_for(lambda: "removed the workspace of a request cancelled while it waited" in worker.output(), 10,
                 "the worker's line about it (written once the removal has finished)")
        assert (worker.workspace_root / str(decoy.id) / "src" / "notes.txt").is_file()
        assert await _session_rows(conn, decoy.id) == 1
    finally:
        worker.stop()
        api.stop()


async def test_a_waiting_request_cancelled_while_no_worker_listened_loses_its_workspace_at_start(
        db_url, conn, tmp_path):
    tenant = await make_tenant(conn, "cancel-offline")
    root = tmp_path / "ws"
    parent = await _parked(conn, tenant, root)
    waits_on = await _parked(conn, tenant, root)
    await queue.request_cancel(conn, parent.id)
    await _start_up(db_url, root)
    assert not (root / str(parent.id)).exists()  # fresh, but nobody will resume it
    assert (root / str(waits_on.id) / "src" / "notes.txt").is_file()
