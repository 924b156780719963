"""The worker's start-up sweep spares the workspace of a request that waits (its session resumes there)."""

from __future__ import annotations

import os
import time

import pytest

from eve import queue
from eve.daemons.worker.daemon import Worker, WorkerConfig
from eve.executor.sandbox import Runtime
from tests.support.tenants import make_tenant

pytestmark = pytest.mark.asyncio


async def test_sweep_keeps_a_waiting_requests_workspace(db_url, conn, tmp_path):
    tenant = await make_tenant(conn, "sweep")
    parent = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                 prompt="parent", priority=1)
    other = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                prompt="failed long ago")
    [claimed] = await queue.claim(conn, "general", "w0", limit=1)
    assert claimed.id == parent.id
    child = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="code-review",
                                prompt="child", parent_id=parent.id)
    await conn.execute("INSERT INTO eve.request_waits (request_id, org_id, kind, ref_id) VALUES (%s, %s, 'child', %s)",
                       (parent.id, tenant.org_id, child.id))
    assert (await (await conn.execute("SELECT eve.request_park(%s, 'w0') AS s", (parent.id,))).fetchone())["s"] \
        == "waiting"
    root = tmp_path / "ws"
    old = time.time() - 3600
    for rid in (parent.id, other.id):
        (root / str(rid)).mkdir(parents=True)
        os.utime(root / str(rid), (old, old))
    worker = Worker(WorkerConfig(dsn=db_url, worker_type="general", workspace_root=root, keep_failed_s=60,
                                 health_port=None, sandbox="none", worker_id="sweeper"))
    worker.runtime = Runtime(mode="none")
    await worker.pool.open()
    try:
        await worker._start_up()
    finally:
        await worker.pool.close()
    assert (root / str(parent.id)).is_dir()  # waiting: kept however old
    assert not (root / str(other.id)).exists()  # past keep_failed_s: swept
