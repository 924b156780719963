"""Wake-up latency: the last reply-to child's result is written → its parked parent is claimed again.

The path the worker takes, minus the agent: a parent is claimed, gets a reply-to child
(a row in eve.request_waits), and is parked (eve.request_park → `waiting`). Another
connection claims the child and writes its result with `queue.complete` — the trigger on
results resolves the wait and wakes the parent (`pending`, NOTIFY eve_requests) in that
same statement. An idle claimer that sleeps on LISTEN eve_requests (plus a 5 s poll), as
the worker's claim loop does, claims the parent. Measured from just before the child's
`complete()` call to the parent's claim returning. Target: p50 ≤ 50 ms.

`EVE_BENCH_SAMPLES` (default 300) scales it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from eve import queue
from eve.models import Outcome
from tests.bench._stack import bench_database

SAMPLES = int(os.environ.get("EVE_BENCH_SAMPLES", "300"))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)


async def measure(dsn: str, tenant: Any) -> dict[str, Any]:
    parents: dict[Any, float] = {}
    claimed: dict[Any, float] = {}
    got = asyncio.Event()
    wake = asyncio.Event()
    stop = asyncio.Event()
    ready = asyncio.Event()
    armed = asyncio.Event()  # only woken parents are the resumer's: not the ones just submitted

    async def listener() -> None:
        async with await connect(dsn) as c:
            await c.execute("LISTEN eve_requests")
            ready.set()
            async for note in c.notifies():
                if note.payload == "parents":
                    wake.set()

    async def resumer() -> None:  # the worker's claim loop, waiting for a woken parent
        async with await connect(dsn) as c:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(wake.wait(), 5)
                except asyncio.TimeoutError:
                    pass
                wake.clear()
                if not armed.is_set():
                    continue
                for req in await queue.claim(c, "parents", "resumer", limit=10):
                    claimed[req.id] = time.perf_counter()
                    got.set()

    async with await connect(dsn) as c:
        # the parents get their own type, so the resumer never sees the children
        await c.execute("INSERT INTO eve.worker_types (id, name, docker_image, config) "
                        "VALUES ('parents', 'Parents', 'x', '{}') ON CONFLICT DO NOTHING")
    tasks = [asyncio.create_task(listener()), asyncio.create_task(resumer())]
    await ready.wait()
    latencies: list[float] = []
    complete_ms: list[float] = []
    cpu: list[float] = []
    async with await connect(dsn) as c:
        for _ in range(SAMPLES):
            parent = await queue.enqueue(c, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="parents",
                                         prompt="parent")
            [p] = await queue.claim(c, "parents", "first-worker", limit=1)
            assert p.id == parent.id
            claimed.pop(parent.id, None)
            child = await queue.enqueue(c, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                        prompt="child", parent_id=parent.id, reply_to={"type": "parent"})
            await c.execute("INSERT INTO eve.request_waits (request_id, org_id, kind, ref_id) "
                            "VALUES (%s, %s, 'child', %s)", (parent.id, tenant.org_id, child.id))
            row = await (await c.execute("SELECT eve.request_park(%s, 'first-worker') AS s", (parent.id,))).fetchone()
            assert row["s"] == "waiting"
            [ch] = await queue.claim(c, "general", "child-worker", limit=1)
            got.clear()
            armed.set()
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            await queue.complete(c, ch, "child-worker", Outcome(status="success", summary="done"))
            complete_ms.append((time.perf_counter() - t0) * 1000)
            try:
                await asyncio.wait_for(got.wait(), 10)
            except asyncio.TimeoutError:
                continue
            finally:
                armed.clear()
            if parent.id in claimed:
                latencies.append((claimed[parent.id] - t0) * 1000)
                cpu.append((time.process_time() - cpu0) * 1000)
            await c.execute("UPDATE eve.orchestration_requests SET status = 'completed', claimed_by = NULL, "
                            "lease_expires_at = NULL WHERE id = %s", (parent.id,))
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"samples": len(latencies), "wakeup_ms": {"p50": pct(latencies, 50), "p95": pct(latencies, 95),
                                                     "p99": pct(latencies, 99), "mean": statistics.mean(latencies)},
            "child_complete_ms": {"p50": pct(complete_ms, 50), "p95": pct(complete_ms, 95)},
            "client_cpu_ms_per_wakeup": {"p50": pct(cpu, 50)}}


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="eve-bench-wakeup-") as tmp, \
            bench_database(Path(tmp)) as (dsn, tenant):
        res = asyncio.run(measure(dsn, tenant))
    w = res["wakeup_ms"]
    print("| metric | p50 | p95 | p99 |")
    print("|---|---|---|---|")
    print(f"| wake-up: last child's result → parent claimed (ms) | {w['p50']:.2f} | {w['p95']:.2f} "
          f"| {w['p99']:.2f} |")
    c = res["child_complete_ms"]
    print(f"| of which: the child's complete() round trip (ms) | {c['p50']:.2f} | {c['p95']:.2f} | |")
    print(f"\n{res['samples']} samples; target p50 ≤ 50 ms: {'met' if w['p50'] <= 50 else 'NOT met'}; "
          f"bench-process CPU per wake-up p50 {res['client_cpu_ms_per_wakeup']['p50']:.2f} ms")
    return res
