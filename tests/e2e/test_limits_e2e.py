"""Per-agent limits (#28) through the real Claude Code CLI in the bwrap sandbox.

Each test starts a real worker with small limits and plays an agent that runs into
them through its Bash tool (the fake Anthropic API scripts the tool calls): a 3 GiB
allocation under 512 MiB, a 2 GiB write into a 256 MiB workspace, 300 sleepers under a
cap of 100, a /tmp filled past its size, a hanging tool, a turn past the wall-time
cap. The agents on the other slot (or the other worker) keep working, and each stopped
agent ends with a final result whose error_code names the limit, and a
`limit_exceeded` event in its log. Where cgroups are not writable (not root) the
memory and process tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from eve.executor.cgroups import Limiter
from eve.executor.limits import AgentLimits
from tests.e2e.test_worker_e2e import events_of, result_of, submit, sync_conn
from tests.support.agents import uid_readable_variant
from tests.support.tenants import make_tenant
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e


def _cgroups_reason() -> str | None:
    lim = Limiter.create(AgentLimits(), worker_id=f"probe-{os.getpid()}")
    lim.close()
    return None if lim.mechanism != "rlimit" else lim.reason


CGROUPS_MISSING = _cgroups_reason()
needs_cgroups = pytest.mark.skipif(CGROUPS_MISSING is not None, reason=f"no writable cgroups: {CGROUPS_MISSING}")


@pytest.fixture
async def tenant(conn):
    return await make_tenant(conn, "limits")


def limited_worker(db_url, tmp_path, variant_bin, *, name: str, slots: int = 1, worker_type: str = "general",
                   **limits: str):
    env = {f"EVE_AGENT_{k.upper()}": v for k, v in limits.items()}
    w = start_worker(db_url, tmp_path, slots=slots, path_prepend=variant_bin, name=name, worker_type=worker_type,
                     env=env, args=["--sandbox", "bwrap"])
    body = w.wait_healthy()
    assert body["limits"]["mechanism"] in ("cgroup2", "cgroup1", "rlimit")
    with sync_conn(db_url) as c:  # registered as it holds them: eve workers and GET /workers show this
        row = c.execute("SELECT limits FROM eve.workers WHERE id = %s", (body["worker_id"],)).fetchone()
    assert row["limits"]["mechanism"] == body["limits"]["mechanism"] and row["limits"]["holds"]
    return w, body


def limit_event(db_url, request_id) -> dict:
    found = [e["data"] for e in events_of(db_url, request_id) if e["kind"] == "limit_exceeded"]
    assert len(found) == 1, events_of(db_url, request_id)
    return found[0]


def tool_output(db_url, request_id) -> str:
    return "\n".join(str(e["data"].get("content")) for e in events_of(db_url, request_id) if e["kind"] == "tool_result")


def attempts(db_url, request_id) -> int:
    with sync_conn(db_url) as c:
        return c.execute("SELECT attempts FROM eve.orchestration_requests WHERE id = %s", (request_id,)).fetchone()[
            "attempts"]


@needs_cgroups
async def test_memory_limit_stops_the_agent_and_the_neighbour_succeeds(db_url, conn, tenant, tmp_path, variant_bin):
    """The worker allows 1024 MiB; the hog's org is narrowed to 512 MiB by an operator, the
    neighbour's (another org) is not: its 700 MiB, over the hog's limit, succeed."""
    neighbour_org = await make_tenant(conn, "limits-neighbour")
    await conn.execute("INSERT INTO eve.org_limits (org_id, agent_limits) VALUES (%s, '{\"memory_mb\": 512}')",
                       (tenant.org_id,))
    worker, body = limited_worker(db_url, tmp_path, variant_bin, name="mem", slots=2, memory_mb="1024")
    try:
        assert body["limits"]["memory_mb"] == 1024 and "whole tree" in body["limits"]["holds"]["memory"]
        hog = await submit(conn, tenant, "[[bash: python3 -c \"b = b'x' * (3 << 30); print('ALLOCATED', len(b))\"]]")
        calm = await submit(conn, neighbour_org, "[[bash: python3 -c \"b = b'y' * (700 << 20); print('CALM', len(b))\" "
                                                 "&& sleep 2 && echo NEIGHBOUR-OK]]")
        hog_res = result_of(db_url, hog.id, timeout=90)
        calm_res = result_of(db_url, calm.id, timeout=90)
        assert worker.health()[0] == 200  # the worker itself untouched
    finally:
        worker.stop()
    assert hog_res["status"] == "failed" and hog_res["error_code"] == "memory_limit", hog_res
    assert "memory limit (512 MiB" in hog_res["error"]
    event = limit_event(db_url, hog.id)
    assert event["limit"] == "memory" and event["value"] == 512 and event["unit"] == "MiB"
    assert event["oom_kills"] >= 1 and event.get("memory_peak_mb", 0) <= 512
    assert "ALLOCATED 3221225472" not in tool_output(db_url, hog.id)
    assert attempts(db_url, hog.id) == 1  # final: not retried
    assert calm_res["status"] == "success", calm_res
    assert "NEIGHBOUR-OK" in tool_output(db_url, calm.id)


async def test_disk_limit_and_tmp_size(db_url, conn, tenant, tmp_path, variant_bin):
    worker, body = limited_worker(db_url, tmp_path, variant_bin, name="disk", slots=2, disk_mb="256", tmp_mb="64")
    try:
        writer = await submit(conn, tenant, "[[bash: dd if=/dev/zero of=big bs=1M count=2048; echo WROTE $?]]")
        # Claude Code keeps the tool's output under /tmp too: what is measured goes to the
        # workspace, and /tmp is emptied again before the output is read
        tmp = await submit(conn, tenant, "[[bash: dd if=/dev/zero of=/tmp/fill bs=1M count=200 2> dd.err; "
                                         "echo TMP-BYTES=$(stat -c %s /tmp/fill) > size.txt; rm -f /tmp/fill; "
                                         "cat dd.err size.txt]]")
        writer_res = result_of(db_url, writer.id, timeout=90)
        tmp_res = result_of(db_url, tmp.id, timeout=90)
    finally:
        worker.stop()
    assert writer_res["status"] == "failed" and writer_res["error_code"] == "disk_limit", writer_res
    event = limit_event(db_url, writer.id)
    assert event["limit"] == "disk" and event["value"] == 256
    assert (worker.workspace_root / str(writer.id) / "big").exists()  # kept like any failure
    assert attempts(db_url, writer.id) == 1
    assert tmp_res["status"] == "success", tmp_res
    out = tool_output(db_url, tmp.id)
    assert "No space left on device" in out, out
    assert "TMP-BYTES=" in out, out
    assert int(out.split("TMP-BYTES=")[1].split()[0]) <= 64 << 20


@needs_cgroups
async def test_process_cap_holds_for_the_whole_tree(db_url, conn, tenant, tmp_path, variant_bin):
    worker, body = limited_worker(db_url, tmp_path, variant_bin, name="pids", pids="100")
    spawner = ("import subprocess\\nps = []\\nfor i in range(300):\\n    try:\\n"
               "        ps.append(subprocess.Popen(['sleep', '30']))\\n    except OSError:\\n        break\\n"
               "print('STARTED', len(ps), flush=True)\\nfor p in ps: p.kill()\\n")
    try:
        req = await submit(conn, tenant, f"[[bash: printf \"{spawner}\" > spawn.py && python3 spawn.py]]")
        res = result_of(db_url, req.id, timeout=90)
    finally:
        worker.stop()
    out = tool_output(db_url, req.id)
    assert "STARTED" in out, (res, out)
    started = int(out.split("STARTED")[1].split()[0])
    assert 0 < started < 100  # the agent's own forks failed at the cap
    usage = [e["data"] for e in events_of(db_url, req.id) if e["kind"] == "resources"]
    assert usage and usage[0]["pids_peak"] <= 100, usage  # the kernel's count for the whole tree


async def test_idle_and_wall_time_limits(db_url, conn, tenant, tmp_path, variant_bin):
    idle_w, _ = limited_worker(db_url, tmp_path, variant_bin, name="idle", idle_minutes="0.15")
    wall_w, _ = limited_worker(db_url, tmp_path, variant_bin, name="wall", worker_type="code-review",
                               idle_minutes="0", max_minutes="0.2")
    try:
        started = time.monotonic()
        # (Claude Code refuses a plain long `sleep` in its Bash tool: a Python sleep hangs instead)
        hang = "[[bash: python3 -c 'import time; time.sleep(120)']]"
        hung = await submit(conn, tenant, hang)
        long = await submit(conn, tenant, hang, worker_type="code-review")
        hung_res = result_of(db_url, hung.id, timeout=60)
        long_res = result_of(db_url, long.id, timeout=60)
        assert time.monotonic() - started < 45
    finally:
        idle_w.stop()
        wall_w.stop()
    assert hung_res["status"] == "timeout" and hung_res["error_code"] == "idle_timeout", (hung_res, tool_output(db_url, hung.id))
    assert limit_event(db_url, hung.id)["limit"] == "idle"
    assert long_res["status"] == "timeout" and long_res["error_code"] == "time_limit", long_res
    event = limit_event(db_url, long.id)
    assert event["limit"] == "time" and event["value"] == 0.2 and event["unit"] == "min"
    spawned = next(e["data"] for e in events_of(db_url, long.id) if e["kind"] == "spawned")
    assert spawned["timeout_ms"] == 12_000  # the cap, not the type's 30 min


UID_AGENT = """#!/usr/bin/python3
# a variant for uid mode (no namespaces): allocates what its context asks, then answers
import json, os, sys
w = sys.stdout.write
w(json.dumps({"type": "system", "subtype": "init", "model": "alloc", "tools": []}) + "\\n")
sys.stdout.flush()
b = b"x" * (int(os.environ.get("EVE_CTX_ALLOC_MB", "0")) << 20)
w(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "allocated %d" % len(b),
              "usage": {"input_tokens": 1, "output_tokens": 1}, "total_cost_usd": 0.0}) + "\\n")
"""


@needs_cgroups
@pytest.mark.skipif(os.geteuid() != 0, reason="uid mode needs a root worker (or CAP_SETUID/CAP_SETGID)")
async def test_uid_mode_memory_limit_holds_and_the_neighbour_succeeds(db_url, conn, tenant, tmp_path):
    with uid_readable_variant(UID_AGENT, prefix="eve-uid-limits-") as outside:
        worker = start_worker(db_url, tmp_path, slots=2, path_prepend=outside / "bin", name="uidlimits",
                              env={"EVE_AGENT_MEMORY_MB": "256"},
                              args=["--sandbox", "uid", "--workspace-root", str(outside / "ws")])
        try:
            body = worker.wait_healthy()
            assert body["sandbox"] == "uid" and body["limits"]["holds"]["tmp"].startswith("TMPDIR in the turn directory")
            hog = await submit(conn, tenant, "hog", context={"allocMb": 1024})
            calm = await submit(conn, tenant, "calm", context={"allocMb": 64})
            hog_res = result_of(db_url, hog.id, timeout=60)
            calm_res = result_of(db_url, calm.id, timeout=60)
        finally:
            worker.stop()
        assert hog_res["status"] == "failed" and hog_res["error_code"] == "memory_limit", hog_res
        assert limit_event(db_url, hog.id)["value"] == 256
        assert calm_res["status"] == "success" and calm_res["summary"] == f"allocated {64 << 20}", calm_res
