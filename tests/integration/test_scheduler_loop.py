"""The scheduler loop in-process: how long it sleeps (fixed clock), and that NOTIFY wakes it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from eve import schedules
from eve.db import make_pool
from eve.scheduler import Scheduler
from eve.schedules import ScheduleSpec
from tests.support.tenants import make_tenant
from tests.support.waiting import async_wait_for

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 10, 0, 20, tzinfo=UTC)


@pytest.fixture
async def pool(db_url):
    p = make_pool(db_url, min_size=1, max_size=4)
    await p.open(wait=True)
    try:
        yield p
    finally:
        await p.close()


async def test_step_sleeps_until_the_next_due_tick(pool, db_url, conn):
    tenant = await make_tenant(conn, "loop-org")
    clock = {"now": NOW}
    sched = Scheduler(pool, db_url, clock=lambda: clock["now"], max_sleep_s=300, unlistened_sleep_s=300)
    assert await sched.step() == 300  # no schedules: the cap (only a NOTIFY wakes it earlier)
    spec = ScheduleSpec(name="m", cron_expression="* * * * *", worker_type="general", prompt="p", overlap="allow")
    await schedules.create(conn, spec, org_id=tenant.org_id, user_id=tenant.user_id, now=NOW)
    assert await sched.step() == pytest.approx(40.005)  # 10:00:20 → 10:01:00
    clock["now"] = NOW + timedelta(seconds=40, milliseconds=2)
    assert await sched.step() == pytest.approx(60.003)  # fired 10:01, next is 10:02
    assert sched.fired == 1
    cur = await conn.execute("SELECT count(*) AS n FROM eve.orchestration_requests")
    assert (await cur.fetchone())["n"] == 1


async def test_a_new_schedule_wakes_a_sleeping_loop(pool, db_url, conn):
    tenant = await make_tenant(conn, "wake-org")
    # without the NOTIFY it would sleep an hour
    sched = Scheduler(pool, db_url, max_sleep_s=3600, unlistened_sleep_s=3600)
    task = asyncio.create_task(sched.run())
    try:
        # the LISTEN connection is up, and the loop has looked again since (it always does) and sleeps
        await async_wait_for(lambda: asyncio.sleep(0, sched.listening and sched.steps >= 2 and sched.asleep), 10,
                             "the loop asleep with LISTEN up")
        steps = sched.steps
        spec = ScheduleSpec(name="every-second", cron_expression="* * * * * *", worker_type="general",
                            prompt="p", overlap="allow")
        s = await schedules.create(conn, spec, org_id=tenant.org_id, user_id=tenant.user_id, seconds=True)

        async def fired() -> bool:
            cur = await conn.execute("SELECT count(*) AS n FROM eve.orchestration_requests WHERE schedule_id = %s",
                                     (s["id"],))
            return (await cur.fetchone())["n"] >= 2

        await async_wait_for(fired, 20, "two ticks fired")
        assert sched.steps >= steps + 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_broken_schedule_does_not_hold_back_the_others(pool, db_url, conn):
    tenant = await make_tenant(conn, "broken-org")
    for name in ("a-broken", "b-fine"):
        spec = ScheduleSpec(name=name, cron_expression="* * * * *", worker_type="general", prompt="p")
        await schedules.create(conn, spec, org_id=tenant.org_id, user_id=tenant.user_id, now=NOW)
    # a template the fire statement cannot turn into a request (written behind the API's back)
    await conn.execute("""UPDATE eve.schedules SET request_template = request_template || '{"priority": "x"}'
                          WHERE name = 'a-broken'""")
    sched = Scheduler(pool, db_url, clock=lambda: NOW + timedelta(seconds=41), max_sleep_s=300)
    assert await sched.step() == 5.0  # the broken one stays due: look again in 5 s, not in a hot loop
    cur = await conn.execute("SELECT s.name FROM eve.orchestration_requests r JOIN eve.schedules s "
                             "ON s.id = r.schedule_id")
    assert [r["name"] for r in await cur.fetchall()] == ["b-fine"]
