"""A real worker process runs the real Claude Code CLI (via an `mclaude` wrapper) against the fake API."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import queue
from tests.support.agents import agent_pids
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import WorkerProcess, start_worker

pytestmark = pytest.mark.e2e


def sync_conn(db_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(db_url, autocommit=True, row_factory=dict_row)


@pytest.fixture
async def tenant(conn):
    return await make_tenant(conn, "e2e")


@pytest.fixture
def worker(db_url, tmp_path, variant_bin):
    # JWT_SECRET is set so that the environment test's "not passed on" means something
    w = start_worker(db_url, tmp_path, path_prepend=variant_bin, env={"EVE_LEASE_SECONDS": "3", "JWT_SECRET": "j" * 40},
                     args=["--grace", "5"])
    try:
        w.wait_healthy()
        yield w
    finally:
        w.stop()


async def submit(conn, tenant, prompt: str, **kw: Any):
    return await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id,
                               worker_type=kw.pop("worker_type", "general"), prompt=prompt, **kw)


def result_of(db_url: str, request_id, timeout: float = 60) -> dict[str, Any]:
    with sync_conn(db_url) as c:
        return wait_for(lambda: c.execute("SELECT * FROM eve.orchestration_results WHERE request_id = %s",
                                          (request_id,)).fetchone(), timeout, f"result of {request_id}")


def wait_kind(db_url: str, request_id, kind: str, count: int = 1, timeout: float = 60) -> None:
    """Wait until the request has `count` events of `kind`."""
    with sync_conn(db_url) as c:
        wait_for(lambda: c.execute("SELECT count(*) AS n FROM eve.request_events WHERE request_id = %s AND kind = %s",
                                   (request_id, kind)).fetchone()["n"] >= count, timeout, f"{count}× {kind}")


def events_of(db_url: str, request_id) -> list[dict[str, Any]]:
    with sync_conn(db_url) as c:
        return c.execute("SELECT kind, data FROM eve.request_events WHERE request_id = %s ORDER BY id",
                         (request_id,)).fetchall()


def no_processes_in(workspace: Path) -> bool:
    """True when no agent process of a request under this workspace root is left (agent and tools gone)."""
    return not agent_pids(workspace.parent, [workspace.name])


async def test_smoke_prompt_runs_bash_and_succeeds(db_url, conn, tenant, worker: WorkerProcess):
    req = await submit(conn, tenant, 'Echo "smoke test passed" using the Bash tool')
    res = result_of(db_url, req.id)
    assert res["status"] == "success", res
    assert "smoke test passed" in json.dumps(res["output"])
    assert "smoke test passed" in res["summary"]
    assert res["tokens_used"] > 0 and float(res["cost_usd"]) > 0 and res["duration_ms"] >= 0
    events = events_of(db_url, req.id)
    kinds = [e["kind"] for e in events]
    for kind in ("claimed", "skill_loaded", "spawned", "init", "tool_call", "tool_result", "text", "result"):
        assert kind in kinds, (kind, kinds)
    call = next(e for e in events if e["kind"] == "tool_call")
    assert call["data"]["tool"] == "Bash" and call["data"]["summary"] == 'Bash echo "smoke test passed"'
    tool_result = next(e for e in events if e["kind"] == "tool_result")
    assert "smoke test passed" in tool_result["data"]["content"]
    skills = {e["data"]["skill"] for e in events if e["kind"] == "skill_loaded"}
    assert skills == {"general", "orchestration"}
    spawned = next(e for e in events if e["kind"] == "spawned")
    assert spawned["data"]["workspace"] == f"/workspace/{req.id}" and spawned["data"]["sandbox"] == "bwrap"
    # a successful request's workspace is deleted with its result
    wait_for(lambda: not (worker.workspace_root / str(req.id)).exists(), 10, "the workspace to be removed")
    with sync_conn(db_url) as c:
        row = c.execute("SELECT status, attempts, claimed_by FROM eve.orchestration_requests WHERE id = %s",
                        (req.id,)).fetchone()
    assert row["status"] == "completed" and row["attempts"] == 1 and row["claimed_by"].startswith("worker-")


async def test_agent_environment_is_allowlisted(db_url, conn, tenant, worker, monkeypatch):
    req = await submit(conn, tenant, "[[bash: env | sort]]",
                       context={"repo": {"fullName": "acme/api"}, "prNumber": 42, "labels": ["a", "b"],
                                "bad key!": "x", "PATH": "/evil"})
    res = result_of(db_url, req.id)
    assert res["status"] == "success", res
    env_dump = next(e["data"]["content"] for e in events_of(db_url, req.id) if e["kind"] == "tool_result")
    lines = set(env_dump.splitlines())
    assert f"EVE_REQUEST_ID={req.id}" in lines
    assert f"EVE_ORG_ID={tenant.org_id}" in lines and f"EVE_USER_ID={tenant.user_id}" in lines
    assert "EVE_WORKER_TYPE=general" in lines
    assert "EVE_CTX_REPO_FULL_NAME=acme/api" in lines and "EVE_CTX_PR_NUMBER=42" in lines
    assert 'EVE_CTX_LABELS=["a", "b"]' in lines and "EVE_CTX_PATH=/evil" in lines
    worker_env = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    assert {b"DATABASE_URL", b"JWT_SECRET"} <= {e.split(b"=", 1)[0] for e in worker_env}  # the worker has them
    assert not any(line.startswith(("DATABASE_URL=", "JWT_SECRET=", "EVE_TEST_DATABASE_URL=")) for line in lines)
    assert "j" * 40 not in env_dump
    assert not any(line == "PATH=/evil" for line in lines)
    skipped = [e["data"] for e in events_of(db_url, req.id) if e["kind"] == "context_skipped"]
    assert skipped == [{"key": "bad key!", "reason": "not a valid env name"}]


async def test_api_error_fails_with_api_error(db_url, conn, tenant, worker):
    req = await submit(conn, tenant, "please fail [[api_error]]")
    res = result_of(db_url, req.id)
    assert res["status"] == "failed" and res["error_code"] == "api_error", res
    assert "400" in res["error"]


async def test_missing_variant_fails_clearly(db_url, conn, tenant, worker):
    req = await submit(conn, tenant, "hi", config={"variant": "zai-not-installed"})
    res = result_of(db_url, req.id)
    assert res["status"] == "failed" and res["error_code"] == "variant_not_found"
    assert "npx cc-mirror quick" in res["error"] and "EVE_VARIANT_ZAI_NOT_INSTALLED" in res["error"]


async def test_hanging_agent_times_out_and_leaves_no_processes(db_url, conn, tenant, worker, fake_api):
    req = await submit(conn, tenant, "wait forever [[hang]]", config={"timeout_ms": 3000})
    res = result_of(db_url, req.id, timeout=60)
    assert res["status"] == "timeout" and res["error_code"] == "timeout"
    wait_for(lambda: no_processes_in(worker.workspace_root / str(req.id)), 15, "agent processes to exit")
    with sync_conn(db_url) as c:
        assert c.execute("SELECT status FROM eve.orchestration_requests WHERE id = %s",
                         (req.id,)).fetchone()["status"] == "failed"


async def test_cancel_mid_run_records_cancelled(db_url, conn, tenant, worker):
    req = await submit(conn, tenant, "wait forever [[hang]]")
    with sync_conn(db_url) as c:
        wait_for(lambda: c.execute("SELECT 1 FROM eve.request_events WHERE request_id = %s AND kind = 'spawned'",
                                   (req.id,)).fetchone(), 30, "the agent to start")
    await queue.request_cancel(conn, req.id)
    res = result_of(db_url, req.id, timeout=30)
    assert res["status"] == "cancelled"
    wait_for(lambda: no_processes_in(worker.workspace_root / str(req.id)), 15, "agent processes to exit")
    kinds = [e["kind"] for e in events_of(db_url, req.id)]
    assert "cancel_requested" in kinds and kinds[-1] == "cancelled"


async def test_worker_registers_heartbeats_and_deregisters(db_url, conn, tmp_path, variant_bin):
    w = start_worker(db_url, tmp_path, path_prepend=variant_bin, name="reg", env={"EVE_LEASE_SECONDS": "3"})
    try:
        body = w.wait_healthy()
        assert body["worker_id"] == f"worker-{os.uname().nodename}-{w.pid}" and body["slots_busy"] == 0
        with sync_conn(db_url) as c:
            row = wait_for(lambda: c.execute("SELECT * FROM eve.workers WHERE pid = %s", (w.pid,)).fetchone(),
                           10, "registration")
            assert row["state"] == "idle" and row["worker_type"] == "general"
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{w.health_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert "eve_worker_claims_total" in text and "process_resident_memory_bytes" in text
    finally:
        assert w.stop(signal.SIGTERM) == 0
    with sync_conn(db_url) as c:
        row = c.execute("SELECT state, stopped_at FROM eve.workers WHERE pid = %s", (w.pid,)).fetchone()
        logs = c.execute("SELECT message FROM eve.worker_logs WHERE worker_id = %s", (body["worker_id"],)).fetchall()
    assert row["state"] == "stopped" and row["stopped_at"] is not None
    assert any("started" in r["message"] for r in logs) and any("stopped" in r["message"] for r in logs)


async def test_model_allowed_tools_and_skills_reach_claude_code(db_url, conn, tenant, worker, fake_api):
    """Read from the requests Claude Code sent to the fake API, not from our own events."""
    from tests.e2e.fake_anthropic import first_user_text

    # `touch` writes, so Claude Code asks permission for it (a bare `echo` it would run as read-only)
    allowed = await submit(conn, tenant, "[[bash: touch made-by-bash && echo allowed-ran]] flags-allowed",
                           config={"model": "claude-eve-test-model", "allowed_tools": ["Bash"]})
    denied = await submit(conn, tenant, "[[bash: touch made-by-bash && echo denied-ran]] flags-denied",
                          config={"allowed_tools": ["Read"]})
    res_allowed, res_denied = result_of(db_url, allowed.id), result_of(db_url, denied.id)

    turns = fake_api.main_requests("flags-allowed")
    assert len(turns) == 2, [first_user_text(t["body"]) for t in turns]  # the tool call, then the answer
    assert {t["body"]["model"] for t in turns} == {"claude-eve-test-model"}  # --model reached the API
    body = json.dumps(turns[0]["body"], ensure_ascii=False)
    skill = Path(__file__).resolve().parents[2] / "skills" / "general" / "SKILL.md"
    description = next(line for line in skill.read_text().splitlines() if line.startswith("description:"))
    assert description.split(":", 1)[1].strip()[:60] in body  # the copied skill was loaded by Claude Code
    # --allowedTools: Bash allowed ran; Bash not allowed was refused by Claude Code itself
    allowed_result = turns[1]["body"]["messages"][-1]["content"]
    assert any(b.get("type") == "tool_result" and not b.get("is_error") and "allowed-ran" in json.dumps(b)
               for b in allowed_result)
    assert res_allowed["status"] == "success" and "allowed-ran" in res_allowed["summary"]
    [_, after_denial] = fake_api.main_requests("flags-denied")
    blocks = after_denial["body"]["messages"][-1]["content"]
    assert any(b.get("type") == "tool_result" and b.get("is_error") for b in blocks), blocks
    assert "[tool error]" in (res_denied["summary"] or "") and "Done." not in (res_denied["summary"] or "")
    assert res_denied["output"]["permission_denials"], res_denied["output"]
