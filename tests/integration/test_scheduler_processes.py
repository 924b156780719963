"""Three real worker processes, each running the scheduler loop, one database: every tick of
a seconds-scale schedule yields exactly one request.

The schedule uses the 6-field test hook (`*/2 * * * * *`, every 2 s) so the test takes
seconds, not minutes. It is created after the processes are up, so their loops must be
woken by NOTIFY from an idle sleep to see it at all.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from eve import schedules
from eve.schedules import ScheduleSpec
from tests.support.tenants import make_tenant
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.slow
TICKS = 6


async def test_three_scheduler_processes_fire_each_tick_exactly_once(db_url, conn, tmp_path):
    tenant = await make_tenant(conn, "cron-org")
    # workers of type `data` run the loop but never claim the `playwright` requests it creates,
    # so every request stays pending and countable
    procs = [start_worker(db_url, tmp_path, worker_type="data", name=f"w{i}") for i in (1, 2, 3)]
    try:
        for w in procs:
            w.wait_healthy()
        spec = ScheduleSpec(name="every-2s", cron_expression="*/2 * * * * *", worker_type="playwright",
                            prompt="tick", overlap="allow")
        s = await schedules.create(conn, spec, org_id=tenant.org_id, user_id=tenant.user_id, seconds=True)

        async def fired() -> int:
            cur = await conn.execute("SELECT count(*) AS n FROM eve.schedule_fires WHERE schedule_id = %s",
                                     (s["id"],))
            return (await cur.fetchone())["n"]

        deadline = time.monotonic() + 90
        while await fired() < TICKS:
            assert time.monotonic() < deadline, f"only {await fired()} ticks fired in 90 s"
            assert all(p.proc.poll() is None for p in procs), "a process died"
            await asyncio.sleep(0.2)
        await schedules.update(conn, s["id"], {"enabled": False}, org_id=tenant.org_id)
    finally:
        outputs = [p.output() for p in procs]
        for p in procs:
            p.stop()

    cur = await conn.execute(
        "SELECT f.fire_at, f.outcome, f.fired_at, f.request_id, r.schedule_id "
        "FROM eve.schedule_fires f LEFT JOIN eve.orchestration_requests r ON r.id = f.request_id "
        "WHERE f.schedule_id = %s ORDER BY f.fire_at", (s["id"],))
    fires = await cur.fetchall()
    cur = await conn.execute("SELECT id FROM eve.orchestration_requests WHERE schedule_id = %s", (s["id"],))
    requests = [r["id"] for r in await cur.fetchall()]

    ticks = [f["fire_at"] for f in fires]
    assert len(fires) >= TICKS
    assert all(f["outcome"] == "fired" and f["schedule_id"] == s["id"] for f in fires), fires
    # exactly one request per tick: as many requests as ticks, each tied to its own tick
    assert len(requests) == len(set(requests)) == len(fires)
    assert {f["request_id"] for f in fires} == set(requests)
    # every tick between the first and the last, each an even second: none skipped, none doubled
    assert all(t.second % 2 == 0 and t.microsecond == 0 for t in ticks)
    assert ticks == [ticks[0] + timedelta(seconds=2 * i) for i in range(len(ticks))]
    # the loops were woken by NOTIFY when the schedule appeared, and fired it promptly (not on a poll)
    lateness = [(f["fired_at"] - f["fire_at"]).total_seconds() for f in fires]
    print(f"\n{len(fires)} ticks, lateness s: min {min(lateness):.3f} max {max(lateness):.3f}")
    winners = [sum(1 for line in out.splitlines() if "fired (request" in line) for out in outputs]
    print(f"ticks won per worker: {winners}")
