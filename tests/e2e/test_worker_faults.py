"""Workers crash, get stopped and lose their database; no request is lost and none gets two results."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import migrate, queue
from eve.pg import EmbeddedPostgres
from tests.support.pgharness import FAST_SETTINGS
from tests.support.agents import agent_pids, kill_agents
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import WorkerProcess, start_worker

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLOW_ECHO = '[[slow: 0.25]] [[bash: echo "survived"]]'  # ~3 s of streaming per model turn


def db(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True, row_factory=dict_row)


def one(dsn: str, sql: str, *args: Any) -> dict[str, Any] | None:
    with db(dsn) as c:
        return c.execute(sql, args).fetchone()


def wait_event(dsn: str, request_id: Any, kind: str, timeout: float = 30) -> None:
    wait_for(lambda: one(dsn, "SELECT 1 FROM eve.request_events WHERE request_id = %s AND kind = %s",
                         request_id, kind), timeout, f"event {kind}")


def kill_agents_in(workspace: Path) -> None:
    """Stop agents a SIGKILLed worker left behind (if the sandbox did not already)."""
    kill_agents(workspace)


async def submit(dsn: str, prompt: str, **kw: Any):
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        cur = await c.execute("SELECT org_id, user_id FROM eve.org_members LIMIT 1")
        row = await cur.fetchone()
        if row is None:
            t = await make_tenant(c, "faults")
            row = {"org_id": t.org_id, "user_id": t.user_id}
        return await queue.enqueue(c, org_id=row["org_id"], user_id=row["user_id"], worker_type="general",
                                   prompt=prompt, **kw)


async def test_kill_9_mid_request_another_worker_finishes_it(db_url, tmp_path, variant_bin):
    env = {"EVE_LEASE_SECONDS": "2"}
    a = start_worker(db_url, tmp_path, path_prepend=variant_bin, env=env, name="a")
    b: WorkerProcess | None = None
    try:
        a.wait_healthy()
        req = await submit(db_url, SLOW_ECHO)
        wait_event(db_url, req.id, "spawned")
        a.kill()  # kill -9: no drain, no deregistration, lease left to expire
        kill_agents_in(a.workspace_root)
        b = start_worker(db_url, tmp_path, path_prepend=variant_bin, env=env, name="b")
        res = wait_for(lambda: one(db_url, "SELECT * FROM eve.orchestration_results WHERE request_id = %s", req.id),
                       90, "the second worker's result")
        assert res["status"] == "success", res
        row = one(db_url, "SELECT attempts, status, claimed_by FROM eve.orchestration_requests WHERE id = %s", req.id)
        assert row["attempts"] == 2 and row["status"] == "completed" and row["claimed_by"].endswith(f"-{b.pid}")
        assert one(db_url, "SELECT count(*) AS n FROM eve.orchestration_results WHERE request_id = %s",
                   req.id)["n"] == 1
        requeued = one(db_url, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'requeued'",
                       req.id)
        assert requeued["data"]["reason"] == "worker_lost"
    finally:
        a.kill()
        kill_agents_in(a.workspace_root)
        if b is not None:
            b.stop()


async def test_sigterm_lets_a_running_request_finish(db_url, tmp_path, variant_bin):
    w = start_worker(db_url, tmp_path, path_prepend=variant_bin, args=["--grace", "60"], name="graceful")
    try:
        w.wait_healthy()
        req = await submit(db_url, SLOW_ECHO)
        wait_event(db_url, req.id, "spawned")
        wait_for(lambda: _agents_alive(w.workspace_root), 30, "the agent to run")
        # the request is running when the signal arrives: no result yet, the agent is alive
        assert one(db_url, "SELECT status FROM eve.orchestration_requests WHERE id = %s", req.id) == {
            "status": "processing"}
        assert one(db_url, "SELECT 1 FROM eve.orchestration_results WHERE request_id = %s", req.id) is None
        body = w.health()[1]  # busy, and says so without naming the request: /health needs no token
        assert body["slots_busy"] == 1 and str(req.id) not in json.dumps(body)
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(90) == 0
        res = one(db_url, "SELECT status FROM eve.orchestration_results WHERE request_id = %s", req.id)
        assert res == {"status": "success"}
        assert '"running": 1' in w.output() and "waiting for running requests" in w.output()
        assert one(db_url, "SELECT state FROM eve.workers WHERE pid = %s", w.pid) == {"state": "stopped"}
    finally:
        w.kill()


async def test_sigterm_past_the_grace_period_requeues_without_counting_the_attempt(db_url, tmp_path, variant_bin):
    w = start_worker(db_url, tmp_path, path_prepend=variant_bin, args=["--grace", "1"], name="impatient")
    try:
        w.wait_healthy()
        req = await submit(db_url, "never answers [[hang]]")
        wait_event(db_url, req.id, "spawned")
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(60) == 0
        row = one(db_url, "SELECT status, attempts, claimed_by FROM eve.orchestration_requests WHERE id = %s", req.id)
        assert row == {"status": "pending", "attempts": 0, "claimed_by": None}
        assert one(db_url, "SELECT 1 FROM eve.orchestration_results WHERE request_id = %s", req.id) is None
        wait_for(lambda: not _agents_alive(w.workspace_root), 15, "the agent to be stopped")
    finally:
        w.kill()
        kill_agents_in(w.workspace_root)


def _agents_alive(workspace: Path) -> bool:
    return bool(agent_pids(workspace))


@pytest.fixture
def own_cluster(tmp_path: Path):
    """A PostgreSQL of this test's own, so it can be restarted without disturbing others."""
    pg = EmbeddedPostgres(tmp_path / "restartable", port=0, settings=FAST_SETTINGS)
    dsn = pg.start()
    asyncio.run(migrate.migrate(dsn))
    try:
        yield pg, dsn
    finally:
        pg.stop(mode="immediate")


async def test_database_restart_while_idle_and_while_running(own_cluster, tmp_path, variant_bin):
    pg, dsn = own_cluster
    warm = await submit(dsn, "[[text: warm-up]]")  # creates the tenant
    # The worker notices an outage when a pooled connection fails, or only when the pool gives up
    # waiting for one (30 s): the lease is well above that, so the held result is still its own.
    w = start_worker(dsn, tmp_path, path_prepend=variant_bin, env={"EVE_LEASE_SECONDS": "150"}, name="resilient")
    try:
        w.wait_healthy()
        wait_for(lambda: one(dsn, "SELECT 1 FROM eve.orchestration_results WHERE request_id = %s", warm.id), 60,
                 "the warm-up result")
        # idle: nothing in flight; the database goes away and comes back; the worker stays up and serves again
        assert one(dsn, "SELECT count(*) AS n FROM eve.orchestration_requests "
                        "WHERE status IN ('pending', 'claimed', 'processing')") == {"n": 0}
        pg.stop(mode="fast")
        wait_for(lambda: w.health()[0] == 503, 90, "health to report the database down")
        assert w.health()[1]["slots_busy"] == 0 and w.proc.poll() is None
        pg.start()
        wait_for(lambda: w.health()[0] == 200, 30, "health to report the database back")
        req = await submit(dsn, "[[text: after the restart]]")
        res = wait_for(lambda: one(dsn, "SELECT status FROM eve.orchestration_results WHERE request_id = %s",
                                   req.id), 60, "a request after the restart")
        assert res == {"status": "success"}

        # running: the database stays down until the agent has finished, so the worker must hold
        # the result in memory and write it (once) only after the database is back
        req = await submit(dsn, SLOW_ECHO)
        wait_event(dsn, req.id, "spawned")
        wait_for(lambda: _agents_alive(w.workspace_root), 30, "the agent to run")
        mark = len(w.output())  # lines from here on belong to this outage
        pg.stop(mode="fast")
        wait_for(lambda: not _agents_alive(w.workspace_root), 90, "the agent to finish while the database is down")
        wait_for(lambda: "database unavailable" in w.output()[mark:], 90, "the worker to retry the result")
        status, body = w.health()
        assert status == 503 and body["slots_busy"] == 1 and w.proc.poll() is None
        pg.start()
        res = wait_for(lambda: one(dsn, "SELECT status, summary, created_at > pg_postmaster_start_time() AS after "
                                        "FROM eve.orchestration_results WHERE request_id = %s", req.id),
                       90, "the held result")
        assert res["status"] == "success" and res["after"] is True, res
        assert one(dsn, "SELECT count(*) AS n FROM eve.orchestration_results WHERE request_id = %s",
                   req.id) == {"n": 1}
        assert one(dsn, "SELECT status, attempts FROM eve.orchestration_requests WHERE id = %s",
                   req.id) == {"status": "completed", "attempts": 1}
        tool = one(dsn, "SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'tool_result'",
                   req.id)
        assert tool is not None and "survived" in str(tool["data"])  # Bash ran; its output was held too
        assert w.proc.poll() is None
        w.wait_healthy()
    finally:
        w.stop()
