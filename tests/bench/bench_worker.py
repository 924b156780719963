"""Worker benchmark: overhead around the agent, stream throughput, idle memory, real end-to-end latency.

* claim → spawn and agent exit → result committed, with a stub variant that answers at
  once (so only the worker's own work is measured), p50 over N requests;
* stream parsing into the database: a stub variant prints 20,000 events as fast as it can;
* idle worker RSS;
* end-to-end latency of a no-op request through the real Claude Code CLI and the fake API.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from eve import queue
from tests.bench._stack import bench_database, rss_mb
from tests.support.workerproc import start_worker

N = int(os.environ.get("EVE_BENCH_WORKER_N", "100"))
STREAM_EVENTS = int(os.environ.get("EVE_BENCH_STREAM_EVENTS", "20000"))

STUB = """#!/usr/bin/env python3
import json, sys, time
n = int(sys.argv[-1]) if sys.argv[-1].isdigit() else 0
w = sys.stdout.write
w(json.dumps({"type": "system", "subtype": "init", "model": "stub", "tools": ["Bash"]}) + "\\n")
line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "working"}]}}) + "\\n"
for _ in range(n):
    w(line)
w(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "ok",
              "usage": {"input_tokens": 1, "output_tokens": 1}, "total_cost_usd": 0.0,
              "exit_at": time.time()}) + "\\n")
sys.stdout.flush()
"""


def p50(values: list[float]) -> float:
    return statistics.median(values)


async def wait_result(c: psycopg.AsyncConnection[Any], rid: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await (await c.execute("SELECT * FROM eve.orchestration_results WHERE request_id = %s",
                                     (rid,))).fetchone()
        if row:
            return row
        await asyncio.sleep(0.01)
    raise TimeoutError(rid)


async def overhead(dsn: str, tenant: Any) -> dict[str, Any]:
    claim_to_spawn, exit_to_result = [], []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        for _ in range(N):
            req = await queue.enqueue(c, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                      prompt="0", config={"variant": "stub"})
            res = await wait_result(c, req.id)
            ev = {r["kind"]: r["at"] for r in await (await c.execute(
                "SELECT kind, min(at) AS at FROM eve.request_events WHERE request_id = %s GROUP BY kind",
                (req.id,))).fetchall()}
            claim_to_spawn.append((ev["spawned"] - ev["claimed"]).total_seconds())
            exit_at = datetime.fromtimestamp(res["output"]["exit_at"], tz=res["created_at"].tzinfo)
            exit_to_result.append((res["created_at"] - exit_at).total_seconds())
    return {"claim_to_spawn_ms_p50": p50(claim_to_spawn) * 1000, "exit_to_result_ms_p50": p50(exit_to_result) * 1000}


async def stream_throughput(dsn: str, tenant: Any) -> float:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        req = await queue.enqueue(c, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt=str(STREAM_EVENTS), config={"variant": "stub"})
        await wait_result(c, req.id)
        row = await (await c.execute(
            "SELECT count(*) AS n, min(at) FILTER (WHERE kind = 'spawned') AS t0, max(e.id) AS last "
            "FROM eve.request_events e WHERE request_id = %s AND kind IN ('text', 'spawned')", (req.id,))).fetchone()
        res = await (await c.execute("SELECT created_at FROM eve.orchestration_results WHERE request_id = %s",
                                     (req.id,))).fetchone()
    n = row["n"] - 1
    return n / (res["created_at"] - row["t0"]).total_seconds()


async def e2e_latency(dsn: str, tenant: Any, runs: int = 10) -> float:
    out = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        for _ in range(runs):
            req = await queue.enqueue(c, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                      prompt="[[text: done]]")
            res = await wait_result(c, req.id)
            assert res["status"] == "success", res
            out.append((res["created_at"] - req.created_at).total_seconds())
    return p50(out)


LIMITS_OFF = {"EVE_AGENT_LIMITS": "rlimit", **{f"EVE_AGENT_{k}": "0" for k in (
    "MEMORY_MB", "PIDS", "TMP_MB", "DISK_MB", "MAX_MINUTES", "IDLE_MINUTES")}}


def limits_off(dsn: str, tmp: Path, tenant: Any) -> float:
    """claim → spawn p50 of the same sandbox with every per-agent limit off."""
    worker = start_worker(dsn, tmp, path_prepend=tmp / "bin", env={"EVE_LOG_LEVEL": "WARNING", **LIMITS_OFF},
                          args=["--sandbox", "auto"], name="nolimits")
    try:
        worker.wait_healthy()
        return float(asyncio.run(overhead(dsn, tenant))["claim_to_spawn_ms_p50"])
    finally:
        worker.stop()


def run() -> dict[str, Any]:
    from tests.e2e.claude_cli import ensure_claude_code, write_variant
    from tests.e2e.fake_anthropic import FakeAnthropic

    results: dict[str, Any] = {"requests": N, "stream_events": STREAM_EVENTS}
    with tempfile.TemporaryDirectory(prefix="eve-bench-worker-") as tmp_s, FakeAnthropic() as fake:
        tmp = Path(tmp_s)
        stub = tmp / "bin" / "stub"
        stub.parent.mkdir()
        stub.write_text(STUB)
        stub.chmod(0o755)
        write_variant(tmp / "bin", "mclaude", claude=ensure_claude_code(), base_url=fake.url, home=tmp / "home")
        with bench_database(tmp) as (dsn, t):
            worker = start_worker(dsn, tmp, path_prepend=tmp / "bin", env={"EVE_LOG_LEVEL": "WARNING"},
                                  args=["--sandbox", "auto"])
            try:
                health = worker.wait_healthy()
                results["sandbox"], results["network"] = health["sandbox"], health["network"]
                results["limits"] = health["limits"]["mechanism"]
                time.sleep(2)  # let start-up settle before reading the idle footprint
                results["idle_rss_mb"] = rss_mb(worker.pid)
                results.update(asyncio.run(overhead(dsn, t)))
                results["stream_events_per_s"] = asyncio.run(stream_throughput(dsn, t))
                results["e2e_claude_code_s_p50"] = asyncio.run(e2e_latency(dsn, t))
            finally:
                worker.stop()
            # the same sandbox with every per-agent limit off (no cgroup, no watcher work): what limits cost
            results["claim_to_spawn_ms_p50_limits_off"] = limits_off(dsn, tmp, t)
            # the same sandbox on the host's network, to show what the egress proxy costs end to end
            hostnet = start_worker(dsn, tmp, path_prepend=tmp / "bin", env={"EVE_LOG_LEVEL": "WARNING"},
                                   args=["--sandbox", "auto", "--agent-network", "open"], name="hostnet")
            try:
                hostnet.wait_healthy()
                results["e2e_claude_code_s_p50_network_open"] = asyncio.run(e2e_latency(dsn, t))
            finally:
                hostnet.stop()
            # the same spawn path without containment, to show what the sandbox costs
            bare = start_worker(dsn, tmp, path_prepend=tmp / "bin", env={"EVE_LOG_LEVEL": "WARNING"},
                                args=["--sandbox", "none"], name="bare")
            try:
                bare.wait_healthy()
                none = asyncio.run(overhead(dsn, t))
                results["claim_to_spawn_ms_p50_no_sandbox"] = none["claim_to_spawn_ms_p50"]
            finally:
                bare.stop()
    print("| measure | value | target |\n|---|---|---|")
    print(f"| claim → spawn, p50 over {N}, sandbox {results['sandbox']}, network {results['network']} | "
          f"{results['claim_to_spawn_ms_p50']:.1f} ms | ≤ 20 ms |")
    print(f"| claim → spawn, p50 over {N}, sandbox {results['sandbox']}, agent limits off (limits on above: "
          f"{results['limits']}) | {results['claim_to_spawn_ms_p50_limits_off']:.1f} ms | — |")
    print(f"| claim → spawn, p50 over {N}, sandbox none | {results['claim_to_spawn_ms_p50_no_sandbox']:.1f} ms | — |")
    print(f"| agent exit → result committed, p50 | {results['exit_to_result_ms_p50']:.1f} ms | ≤ 20 ms |")
    print(f"| stream parsing into the database | {results['stream_events_per_s']:,.0f} events/s | ≥ 20,000 |")
    print(f"| idle worker RSS | {results['idle_rss_mb']:.0f} MB | ≤ 100 MB |")
    print(f"| no-op request end to end through real Claude Code (network {results['network']}), p50 | "
          f"{results['e2e_claude_code_s_p50']:.2f} s | — |")
    print(f"| the same with --agent-network open, p50 | {results['e2e_claude_code_s_p50_network_open']:.2f} s | — |")
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
