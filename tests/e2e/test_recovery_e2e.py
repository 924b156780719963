"""Crash recovery in seconds, and fencing: never two live agents for one request.

Real workers, the real Claude Code CLI (fake Messages API), the sandbox on.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_worker_e2e import events_of, result_of, submit, sync_conn, wait_kind
from tests.support.agents import agent_pids, kill_agents
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
async def tenant(conn):
    return await make_tenant(conn, "recovery")


async def test_worker_restarted_under_its_id_reruns_its_request_at_once(db_url, conn, tenant, tmp_path, variant_bin):
    # a lease far longer than the deadline below: only the restart can have requeued it
    env = {"EVE_LEASE_SECONDS": "120"}
    first = start_worker(db_url, tmp_path, path_prepend=variant_bin, env=env, name="w1", args=["--id", "general-1"])
    second = None
    try:
        first.wait_healthy()
        req = await submit(conn, tenant, "[[bash: sleep 3 && echo slept]]")
        wait_kind(db_url, req.id, "tool_call")
        first.kill()
        killed_at = time.monotonic()
        second = start_worker(db_url, tmp_path, path_prepend=variant_bin, env=env, name="w2",
                              args=["--id", "general-1"])
        wait_kind(db_url, req.id, "spawned", count=2, timeout=20)
        rerun_after = time.monotonic() - killed_at
        res = result_of(db_url, req.id, timeout=60)
    finally:
        first.kill()
        if second is not None:
            second.stop()
        kill_agents(request_ids=[req.id] if "req" in locals() else [])
    assert rerun_after < 20, rerun_after  # the lease (120 s) never ran out
    assert res["status"] == "success"
    requeued = [e["data"] for e in events_of(db_url, req.id) if e["kind"] == "requeued"]
    assert [r["reason"] for r in requeued] == ["worker_restarted"]
    with sync_conn(db_url) as c:
        row = c.execute("SELECT attempts FROM eve.orchestration_requests WHERE id = %s", (req.id,)).fetchone()
        n = c.execute("SELECT count(*) AS n FROM eve.orchestration_results WHERE request_id = %s", (req.id,)).fetchone()
    assert row["attempts"] == 2 and n["n"] == 1


async def test_a_worker_that_lost_its_claim_stops_its_agent_and_writes_nothing(db_url, conn, tenant, tmp_path,
                                                                              variant_bin):
    w = start_worker(db_url, tmp_path, path_prepend=variant_bin, env={"EVE_LEASE_SECONDS": "3"}, name="fenced")
    try:
        w.wait_healthy()
        req = await submit(conn, tenant, "wait forever [[hang]]")
        wait_kind(db_url, req.id, "spawned")
        wait_for(lambda: agent_pids(request_ids=[req.id]), 10, "the agent to run")
        # what the reaper and another worker's claim would do: the request is no longer ours
        with sync_conn(db_url) as c:
            c.execute("UPDATE eve.orchestration_requests SET claimed_by = 'usurper', "
                      "lease_expires_at = now() + interval '1 hour' WHERE id = %s", (req.id,))
        wait_for(lambda: not agent_pids(request_ids=[req.id]), 10, "the fenced agent to be stopped")
        wait_for(lambda: "fencing" in w.output(), 5, "the worker to say why")
        with sync_conn(db_url) as c:
            row = c.execute("SELECT status, claimed_by FROM eve.orchestration_requests WHERE id = %s",
                            (req.id,)).fetchone()
            res = c.execute("SELECT 1 FROM eve.orchestration_results WHERE request_id = %s", (req.id,)).fetchone()
        assert row["status"] == "processing" and row["claimed_by"] == "usurper" and res is None
        wait_for(lambda: w.health()[1]["slots_busy"] == 0, 10, "the slot to be free again")
        with sync_conn(db_url) as c:  # and still nothing written once the slot let go
            assert c.execute("SELECT 1 FROM eve.orchestration_results WHERE request_id = %s",
                             (req.id,)).fetchone() is None
    finally:
        w.stop()
        kill_agents(request_ids=[req.id] if "req" in locals() else [])


async def test_below_the_disk_floor_a_worker_stops_claiming_and_says_why(db_url, conn, tenant, tmp_path, variant_bin):
    floor = 10**9  # MB: more than any disk here has free
    w = start_worker(db_url, tmp_path, path_prepend=variant_bin, name="full", env={"EVE_LEASE_SECONDS": "3"},
                     args=["--min-free-disk-mb", str(floor)])
    try:
        w.wait_healthy()
        req = await submit(conn, tenant, "hi")
        wait_for(lambda: w.health()[1].get("disk_low") is True, 10, "the worker to notice")
        with sync_conn(db_url) as c:
            wait_for(lambda: c.execute("SELECT disk_low FROM eve.workers WHERE pid = %s", (w.pid,)).fetchone()
                     ["disk_low"], 10, "disk_low in the registry")
            assert "disk_low" in w.output()
            # the claim loop checks the floor before every claim: the request is still nobody's
            row = c.execute("SELECT status FROM eve.orchestration_requests WHERE id = %s", (req.id,)).fetchone()
        assert row["status"] == "pending"
    finally:
        w.stop()
    ok = start_worker(db_url, tmp_path, path_prepend=variant_bin, name="roomy")
    try:
        res = result_of(db_url, req.id, timeout=60)
        assert res["status"] == "success"
    finally:
        ok.stop()


def test_sigterm_stops_a_worker_that_never_reached_its_database(tmp_path):
    from eve.pg import free_port

    dead = f"postgresql://eve:x@127.0.0.1:{free_port()}/eve"  # nothing listens there
    w = start_worker(dead, tmp_path, name="unreachable")
    try:
        wait_for(lambda: "database unavailable" in w.output() or "connection failed" in w.output(), 20,
                 "the worker to be retrying")
        assert w.proc.poll() is None
        w.proc.send_signal(15)
        assert w.proc.wait(10) == 0  # not after the pool's 30 s timeouts
        assert "stopped before the database could be reached" in w.output()
    finally:
        w.kill()
