"""Fairness benchmark (#19): org A has 10,000 pending requests, org B then submits 50.

Reports (a) within how many claims all of B's were claimed (round-robin: about 100),
and (b) the claim latency with that backlog against an empty queue (target: within
1.5x). The two databases live on one embedded PostgreSQL and the samples interleave,
so a busy moment on the machine hits both alike. Also the insert latency (the fair
sequence is assigned by a trigger at insert), both ways. `EVE_BENCH_FAIR_BACKLOG` and
`EVE_BENCH_SAMPLES` scale it down.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from eve import queue
from eve.models import Outcome
from eve.queries import Q
from tests.bench._stack import embedded_postgres
from tests.bench.bench_queue import connect, eve_setup, pct
from tests.support.tenants import make_tenant

BACKLOG = int(os.environ.get("EVE_BENCH_FAIR_BACKLOG", "10000"))
LATE = 50
SAMPLES = int(os.environ.get("EVE_BENCH_SAMPLES", "500"))


async def _cycle(c: Any, tenant: Any, lat_claim: list[float], lat_insert: list[float]) -> None:
    """One request of `tenant` in, one claim (whoever's turn it is), its result out."""
    t0 = time.perf_counter()
    await queue.enqueue(c, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general", prompt="noop")
    t1 = time.perf_counter()
    [req] = await queue.claim(c, "general", "bench", limit=1)
    t2 = time.perf_counter()
    await queue.complete(c, req, "bench", Outcome(status="success"))
    lat_insert.append(t1 - t0)
    lat_claim.append(t2 - t1)


async def server_ms(c: Any, n: int, plan_out: list[float]) -> list[float]:
    """The claim's execution time inside PostgreSQL (EXPLAIN ANALYZE, rolled back): no client,
    network or event loop in it, so it shows the statement's own cost on a loaded machine.
    Its planning time goes to plan_out."""
    out = []
    for _ in range(n):
        async with c.transaction(force_rollback=True):
            cur = await c.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + Q.claim_batch,
                                  {"worker_type": "general", "worker_id": "bench", "limit": 1, "lease_seconds": 60})
            explained = (await cur.fetchone())["QUERY PLAN"][0]
            out.append(float(explained["Execution Time"]) / 1000)
            plan_out.append(float(explained["Planning Time"]) / 1000)
    return out


async def measure(admin: str) -> dict[str, Any]:
    empty_dsn, empty_a = await eve_setup(admin, "bench_fair_empty")
    dsn, a = await eve_setup(admin, "bench_fair_backlog")
    async with await connect(dsn) as c, await connect(empty_dsn) as ec:
        b = await make_tenant(c, "late")
        await c.execute("""INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt)
                           SELECT %s, %s, 'general', 'backlog' FROM generate_series(1, %s)""",
                        (a.org_id, a.user_id, BACKLOG))
        for conn in (c, ec):
            await conn.execute("VACUUM ANALYZE eve.orchestration_requests")
        empty: tuple[list[float], list[float]] = ([], [])
        full: tuple[list[float], list[float]] = ([], [])
        for _ in range(SAMPLES):  # interleaved; the backlog stays at BACKLOG (one in, one out)
            await _cycle(ec, empty_a, *empty)
            await _cycle(c, a, *full)
        # one pending request in the empty queue, the backlog in the other: the statement's own time
        await queue.enqueue(ec, org_id=empty_a.org_id, user_id=empty_a.user_id, worker_type="general", prompt="x")
        srv_empty, srv_full, plan_empty, plan_full = [], [], [], []  # type: ignore[var-annotated]
        for _ in range(max(20, SAMPLES // 5)):
            srv_empty += await server_ms(ec, 1, plan_empty)
            srv_full += await server_ms(c, 1, plan_full)
        pending = (await (await c.execute(
            "SELECT count(*) AS n FROM eve.orchestration_requests WHERE status = 'pending'")).fetchone())["n"]
        # B submits 50, one POST each (as through the API); count claims until all are claimed
        for i in range(LATE):
            await queue.enqueue(c, org_id=b.org_id, user_id=b.user_id, worker_type="general", prompt=f"b{i}")
        claims, b_claimed, b_positions = 0, 0, []
        while b_claimed < LATE and claims < BACKLOG + LATE:
            [req] = await queue.claim(c, "general", "bench", limit=1)
            claims += 1
            if req.org_id == b.org_id:
                b_claimed += 1
                b_positions.append(claims)
            await queue.complete(c, req, "bench", Outcome(status="success"))
        # the costly case of a running cap: the only org with work is at its cap, so a claim
        # walks its whole backlog and finds nothing (what every poll and NOTIFY pays then)
        await c.execute("INSERT INTO eve.org_limits (org_id, max_running) VALUES (%s, 1)", (a.org_id,))
        [held] = await queue.claim(c, "general", "bench", limit=1)
        capped_pending = (await (await c.execute(
            "SELECT count(*) AS n FROM eve.orchestration_requests WHERE status = 'pending'")).fetchone())["n"]
        capped: list[float] = []
        for _ in range(max(20, SAMPLES // 10)):
            t0 = time.perf_counter()
            got = await queue.claim(c, "general", "bench", limit=1)
            capped.append(time.perf_counter() - t0)
            assert got == []
        await queue.complete(c, held, "bench", Outcome(status="success"))

    def stats(v: list[float]) -> dict[str, float]:
        return {"p50": pct(v, 50) * 1000, "p99": pct(v, 99) * 1000, "mean": statistics.mean(v) * 1000}

    return {"backlog": BACKLOG, "late": LATE, "samples": SAMPLES, "pending_when_b_submitted": pending,
            "claims_until_all_b": claims, "b_claim_positions": b_positions,
            "claim_ms_empty": stats(empty[0]), "claim_ms_backlog": stats(full[0]),
            "insert_ms_empty": stats(empty[1]), "insert_ms_backlog": stats(full[1]),
            "claim_ratio_p50": pct(full[0], 50) / pct(empty[0], 50),
            "claim_server_ms_empty": stats(srv_empty), "claim_server_ms_backlog": stats(srv_full),
            "claim_server_ratio_p50": pct(srv_full, 50) / pct(srv_empty, 50),
            "claim_planning_ms_empty": stats(plan_empty), "claim_planning_ms_backlog": stats(plan_full),
            "capped_pending": capped_pending, "empty_claim_ms_all_capped": stats(capped)}


def table(res: dict[str, Any]) -> str:
    ce, cb, ie, ib = res["claim_ms_empty"], res["claim_ms_backlog"], res["insert_ms_empty"], res["insert_ms_backlog"]
    return "\n".join([
        "| fairness | value |", "|---|---|",
        f"| org A pending when B submitted | {res['pending_when_b_submitted']:,} |",
        f"| claims until all {res['late']} of B's were claimed | {res['claims_until_all_b']} |",
        f"| claim p50 / p99, empty queue (ms) | {ce['p50']:.2f} / {ce['p99']:.2f} |",
        f"| claim p50 / p99, {res['backlog']:,} backlog (ms) | {cb['p50']:.2f} / {cb['p99']:.2f} |",
        f"| claim p50 ratio backlog / empty (target <= 1.5) | {res['claim_ratio_p50']:.2f} |",
        f"| claim execution in PostgreSQL p50, empty / backlog (ms) | {res['claim_server_ms_empty']['p50']:.3f} / "
        f"{res['claim_server_ms_backlog']['p50']:.3f} (ratio {res['claim_server_ratio_p50']:.2f}) |",
        f"| claim planning in PostgreSQL p50, empty / backlog (ms) | {res['claim_planning_ms_empty']['p50']:.3f} / "
        f"{res['claim_planning_ms_backlog']['p50']:.3f} |",
        f"| insert p50, empty / backlog (ms) | {ie['p50']:.2f} / {ib['p50']:.2f} |",
        f"| claim that finds nothing: the only org with work ({res['capped_pending']:,} pending) at its running cap, "
        f"p50 (ms) | {res['empty_claim_ms_all_capped']['p50']:.2f} |",
    ])


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="eve-bench-") as tmp, \
            embedded_postgres(Path(tmp), max_connections="50") as admin:
        res = asyncio.run(measure(admin))
    print()
    print(table(res))
    return res


if __name__ == "__main__":
    run()
