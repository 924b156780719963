"""Schedules against a real PostgreSQL with a controllable clock: fire, overlap, catch-up, RLS.

The scheduler's `now` is passed in, so every tick here is an exact instant; the
database is real, and so are the races (many connections firing one tick at once).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import limits, queue, schedules
from eve.errors import Conflict, NotFound
from eve.models import Outcome
from eve.schedules import ScheduleSpec
from tests.support.tenants import Tenant, make_tenant

UTC = timezone.utc
T0 = datetime(2026, 11, 25, 9, 58, tzinfo=UTC)


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 25, 10, minute, second, tzinfo=UTC)


@pytest.fixture
async def tenant(conn) -> Tenant:
    return await make_tenant(conn, "sched-org")


async def make(conn, tenant: Tenant, name: str = "every-minute", cron: str = "* * * * *", *,
               now: datetime = T0, **kw: Any) -> dict[str, Any]:
    spec = ScheduleSpec(name=name, cron_expression=cron, worker_type="general", prompt=f"run {name}",
                        context={"repo": "acme/api"}, **kw)
    return await schedules.create(conn, spec, org_id=tenant.org_id, user_id=tenant.user_id, now=now)


async def requests_of(conn, schedule_id) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM eve.orchestration_requests WHERE schedule_id = %s ORDER BY created_at",
                             (schedule_id,))
    return await cur.fetchall()


async def fires_of(conn, schedule_id) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM eve.schedule_fires WHERE schedule_id = %s ORDER BY fire_at",
                             (schedule_id,))
    return await cur.fetchall()


async def test_a_due_tick_creates_one_request_with_the_template(conn, tenant):
    s = await make(conn, tenant)
    assert s["next_fire_at"] == datetime(2026, 11, 25, 9, 59, tzinfo=UTC)
    assert await schedules.fire_due(conn, now=T0 + timedelta(seconds=30)) == []  # not yet
    [r] = await schedules.fire_due(conn, now=datetime(2026, 11, 25, 9, 59, 0, 3000, tzinfo=UTC))
    assert r.outcome == "fired" and r.fire_at == datetime(2026, 11, 25, 9, 59, tzinfo=UTC)
    [req] = await requests_of(conn, s["id"])
    assert req["id"] == r.request_id and req["prompt"] == "run every-minute"
    assert req["context"] == {"repo": "acme/api"} and req["user_id"] == tenant.user_id
    assert req["status"] == "pending" and req["max_attempts"] == 3
    row = await schedules.get(conn, s["id"])
    assert row["next_fire_at"] == at(0) and row["last_fired_at"] is not None
    assert (row["last_outcome"], row["last_request_status"]) == ("fired", "pending")
    # the same instant again: nothing new
    assert await schedules.fire_due(conn, now=datetime(2026, 11, 25, 9, 59, 0, 3000, tzinfo=UTC)) == []


async def test_many_connections_firing_the_same_tick_create_exactly_one_request(db_url, conn, tenant):
    s = await make(conn, tenant, overlap="allow")
    conns = [await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row)
             for _ in range(8)]
    try:
        for tick in (datetime(2026, 11, 25, 9, 59, tzinfo=UTC), at(0), at(1)):  # eight racers per tick
            now = tick + timedelta(milliseconds=1)
            results = await asyncio.gather(*(schedules.fire_due(c, now=now) for c in conns))
            outcomes = sorted(r.outcome for rs in results for r in rs)
            assert outcomes.count("fired") == 1, outcomes
            assert set(outcomes) <= {"fired", "lost"}
    finally:
        for c in conns:
            await c.close()
    reqs = await requests_of(conn, s["id"])
    fires = await fires_of(conn, s["id"])
    assert len(reqs) == len(fires) == 3
    assert [f["fire_at"] for f in fires] == [datetime(2026, 11, 25, 9, 59, tzinfo=UTC), at(0), at(1)]
    assert {f["request_id"] for f in fires} == {r["id"] for r in reqs}


async def test_the_fire_statement_itself_refuses_a_second_fire_of_a_tick(conn, tenant):
    """Even a process with a stale view (same expected next_fire_at) cannot fire a tick twice."""
    s = await make(conn, tenant, overlap="allow")
    from eve.queries import Q

    params = {"schedule_id": s["id"], "expected": s["next_fire_at"], "fire_at": s["next_fire_at"],
              "missed": False, "next_fire_at": s["next_fire_at"], "refused": None}  # leave next_fire_at as it was
    first = await (await conn.execute(Q.schedule_fire_tick, params)).fetchone()
    second = await (await conn.execute(Q.schedule_fire_tick, params)).fetchone()
    assert first["outcome"] == "fired" and second is None
    assert len(await requests_of(conn, s["id"])) == 1


async def test_overlap_skip_waits_for_the_previous_run(conn, tenant):
    s = await make(conn, tenant)  # overlap=skip is the default
    [first] = await schedules.fire_due(conn, now=datetime(2026, 11, 25, 9, 59, 1, tzinfo=UTC))
    [second] = await schedules.fire_due(conn, now=at(0, 1))
    assert (first.outcome, second.outcome, second.request_id) == ("fired", "skipped", None)
    assert (await schedules.get(conn, s["id"]))["last_outcome"] == "skipped"
    # the first run finishes: the next tick fires again
    [claimed] = await queue.claim(conn, "general", "w1")
    assert claimed.schedule_id == s["id"]
    await queue.complete(conn, claimed, "w1", Outcome(status="success", summary="ok"))
    [third] = await schedules.fire_due(conn, now=at(1, 1))
    assert third.outcome == "fired"
    assert len(await requests_of(conn, s["id"])) == 2
    assert [f["outcome"] for f in await fires_of(conn, s["id"])] == ["fired", "skipped", "fired"]


async def test_overlap_allow_fires_while_the_previous_run_is_going(conn, tenant):
    s = await make(conn, tenant, overlap="allow")
    await schedules.fire_due(conn, now=datetime(2026, 11, 25, 9, 59, 1, tzinfo=UTC))
    await schedules.fire_due(conn, now=at(0, 1))
    assert len(await requests_of(conn, s["id"])) == 2


async def test_catch_up_after_downtime_fires_only_the_latest_tick(conn, tenant):
    s = await make(conn, tenant, overlap="allow")
    # everything was down from 09:59 to 10:05:20: one request, for 10:05
    [r] = await schedules.fire_due(conn, now=at(5, 20))
    assert (r.outcome, r.fire_at) == ("fired", at(5))
    assert len(await requests_of(conn, s["id"])) == 1
    assert (await schedules.get(conn, s["id"]))["next_fire_at"] == at(6)


async def test_catch_up_beyond_max_delay_records_a_miss_and_creates_nothing(conn, tenant):
    s = await make(conn, tenant, "nightly", "0 3 * * *", now=datetime(2026, 11, 24, 12, tzinfo=UTC))
    late = datetime(2026, 11, 25, 3, 25, tzinfo=UTC)  # 25 min late, max_delay 10 min
    [r] = await schedules.fire_due(conn, now=late)
    assert (r.outcome, r.fire_at, r.request_id) == ("missed", datetime(2026, 11, 25, 3, tzinfo=UTC), None)
    assert await requests_of(conn, s["id"]) == []
    row = await schedules.get(conn, s["id"])
    assert row["next_fire_at"] == datetime(2026, 11, 26, 3, tzinfo=UTC) and row["last_outcome"] == "missed"


async def test_pause_stops_firing_and_resume_starts_from_now_without_a_burst(conn, tenant):
    s = await make(conn, tenant, overlap="allow")
    paused = await schedules.update(conn, s["id"], {"enabled": False}, org_id=tenant.org_id, now=T0)
    assert paused["next_fire_at"] is None and not paused["enabled"]
    assert await schedules.fire_due(conn, now=at(30)) == []
    resumed = await schedules.update(conn, "every-minute", {"enabled": True}, org_id=tenant.org_id,
                                     now=at(30, 10))
    assert resumed["next_fire_at"] == at(31)
    assert await schedules.fire_due(conn, now=at(30, 59)) == []
    assert [r.outcome for r in await schedules.fire_due(conn, now=at(31, 1))] == ["fired"]
    assert len(await requests_of(conn, s["id"])) == 1


async def test_changing_the_cron_recomputes_the_next_tick(conn, tenant):
    s = await make(conn, tenant, "report", "0 9 * * MON")
    changed = await schedules.update(conn, s["id"], {"cron_expression": "@hourly", "timezone": "Europe/Berlin"},
                                     org_id=tenant.org_id, now=at(17))
    assert changed["next_fire_at"] == at(0).replace(hour=11, minute=0)  # 12:00 CET
    renamed = await schedules.update(conn, s["id"], {"prompt": "new prompt"}, org_id=tenant.org_id, now=at(20))
    assert renamed["next_fire_at"] == changed["next_fire_at"]  # not a timing change
    assert renamed["request_template"]["prompt"] == "new prompt"


async def test_names_are_unique_per_org_and_run_now_works_paused(conn, tenant):
    s = await make(conn, tenant, "nightly", "0 3 * * *", enabled=False)
    with pytest.raises(Conflict, match="already exists"):
        await make(conn, tenant, "nightly", "0 4 * * *")
    other = await make_tenant(conn, "other-org")
    await make(conn, other, "nightly", "0 3 * * *")  # another org may use the name
    rid = await schedules.run_now(conn, "nightly", org_id=tenant.org_id, user_id=tenant.user_id)
    [req] = await requests_of(conn, s["id"])
    assert req["id"] == rid
    assert [f["outcome"] for f in await fires_of(conn, s["id"])] == ["manual"]
    with pytest.raises(NotFound):
        await schedules.run_now(conn, "no-such", org_id=tenant.org_id, user_id=tenant.user_id)


async def test_delete_keeps_the_requests(conn, tenant):
    s = await make(conn, tenant, overlap="allow")
    await schedules.fire_due(conn, now=datetime(2026, 11, 25, 9, 59, 1, tzinfo=UTC))
    await schedules.delete(conn, s["id"], org_id=tenant.org_id)
    cur = await conn.execute("SELECT schedule_id FROM eve.orchestration_requests WHERE org_id = %s",
                             (tenant.org_id,))
    assert [r["schedule_id"] for r in await cur.fetchall()] == [None]
    with pytest.raises(NotFound):
        await schedules.resolve(conn, s["id"], org_id=tenant.org_id)


async def test_a_changed_schedule_notifies_the_schedulers(db_url, conn, tenant):
    listener = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
    try:
        await listener.execute("LISTEN eve_schedules")
        s = await make(conn, tenant)
        gen = listener.notifies()
        assert (await asyncio.wait_for(anext(gen), 10)).channel == "eve_schedules"
        await schedules.update(conn, s["id"], {"enabled": False}, org_id=tenant.org_id)
        assert (await asyncio.wait_for(anext(gen), 10)).channel == "eve_schedules"
    finally:
        await listener.close()


# -- row-level security, in raw SQL as the API's role ----------------------------------------------


async def _as(db_url: str, user_id: Any, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as c:
        async with c.transaction():
            await c.execute("SET LOCAL ROLE eve_api")
            await c.execute("SELECT set_config('eve.user_id', %s, true)", (str(user_id) if user_id else "",))
            cur = await c.execute(sql, params)
            return await cur.fetchall() if cur.description else []


async def test_rls_hides_other_orgs_schedules_and_fires(db_url, conn, tenant):
    other = await make_tenant(conn, "other-org")
    mine = await make(conn, tenant, "mine", overlap="allow")
    theirs = await make(conn, other, "theirs", overlap="allow")
    await schedules.fire_due(conn, now=datetime(2026, 11, 25, 9, 59, 1, tzinfo=UTC))
    names = await _as(db_url, tenant.user_id, "SELECT name FROM eve.schedules")
    assert [r["name"] for r in names] == ["mine"]
    fires = await _as(db_url, tenant.user_id, "SELECT schedule_id FROM eve.schedule_fires")
    assert [f["schedule_id"] for f in fires] == [mine["id"]]
    assert await _as(db_url, None, "SELECT * FROM eve.schedules") == []
    # writes into another org are refused or touch nothing
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        await _as(db_url, tenant.user_id,
                  "INSERT INTO eve.schedules (org_id, user_id, name, cron_expression, worker_type, request_template)"
                  " VALUES (%s, %s, 'sneaky', '* * * * *', 'general', '{\"prompt\": \"x\"}')",
                  (other.org_id, tenant.user_id))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await _as(db_url, tenant.user_id,
                  "INSERT INTO eve.schedule_fires (schedule_id, fire_at, org_id, outcome) VALUES (%s, now(), %s, "
                  "'manual')", (theirs["id"], other.org_id))
    assert await _as(db_url, tenant.user_id, "UPDATE eve.schedules SET enabled = false WHERE id = %s RETURNING id",
                     (theirs["id"],)) == []
    assert await _as(db_url, tenant.user_id, "DELETE FROM eve.schedules WHERE id = %s RETURNING id",
                     (theirs["id"],)) == []
    assert (await schedules.get(conn, theirs["id"]))["enabled"] is True


async def test_daily_0230_berlin_fires_once_a_day_across_both_transitions(conn, tenant):
    s = await make(conn, tenant, "berlin", "30 2 * * *", timezone="Europe/Berlin", overlap="allow",
                   now=datetime(2026, 3, 27, 12, tzinfo=UTC))

    async def tick(*when: int) -> list[str]:
        return [r.outcome for r in await schedules.fire_due(conn, now=datetime(*when, tzinfo=UTC))]

    # spring forward (29 March): 02:30 does not exist; it runs at 03:00 CEST = 01:00 UTC
    assert await tick(2026, 3, 28, 1, 30, 1) == ["fired"]          # 02:30 CET
    assert await tick(2026, 3, 29, 0, 30, 1) == []                 # would be 02:30 CET: not a tick
    assert await tick(2026, 3, 29, 1, 0, 1) == ["fired"]           # 03:00 CEST
    assert (await schedules.get(conn, s["id"]))["next_fire_at"] == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)
    # fall back (25 October): 02:30 happens twice; it runs at the first one only
    await schedules.update(conn, s["id"], {"enabled": False}, org_id=tenant.org_id)
    await schedules.update(conn, s["id"], {"enabled": True}, org_id=tenant.org_id,
                           now=datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert await tick(2026, 10, 25, 0, 30, 1) == ["fired"]         # 02:30 CEST
    assert await tick(2026, 10, 25, 1, 30, 1) == []                # 02:30 CET, the second time: no
    assert await tick(2026, 10, 26, 1, 30, 1) == ["fired"]         # 02:30 CET next day
    fires = [f["fire_at"] for f in await fires_of(conn, s["id"])]
    assert fires == [datetime(2026, 3, 28, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
                     datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)]
    assert len(await requests_of(conn, s["id"])) == 4


async def test_a_tick_past_the_orgs_limits_is_refused_and_the_schedule_moves_on(conn, tenant):
    """Cron is not a way around the org's limits (eve.limits): at the pending cap, or over
    the monthly budget, the tick is recorded as `refused` with the reason, no request is
    created, and the next tick fires once there is room again."""
    s = await make(conn, tenant)
    await conn.execute("INSERT INTO eve.org_limits (org_id, max_pending) VALUES (%s, 1)", (tenant.org_id,))
    limits.CACHE.forget(tenant.org_id)
    await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general", prompt="other")
    await conn.execute("SET ROLE service_role")  # as the scheduler in a worker fires
    [r] = await schedules.fire_due(conn, now=at(0, 0))
    assert (r.outcome, r.request_id) == ("refused", None) and "at most 1 pending" in r.detail
    [fire] = await fires_of(conn, s["id"])
    assert fire["outcome"] == "refused" and "at most 1 pending" in fire["detail"]
    assert await requests_of(conn, s["id"]) == []
    row = (await schedules.list_schedules(conn, schedule_id=s["id"]))[0]
    assert row["next_fire_at"] == at(1) and row["last_outcome"] == "refused"

    await conn.execute("UPDATE eve.org_limits SET max_pending = NULL, monthly_budget_usd = 0 WHERE org_id = %s",
                       (tenant.org_id,))
    limits.CACHE.forget(tenant.org_id)
    [r] = await schedules.fire_due(conn, now=at(1, 0))
    assert r.outcome == "refused" and "monthly budget reached" in r.detail

    await conn.execute("DELETE FROM eve.org_limits WHERE org_id = %s", (tenant.org_id,))
    limits.CACHE.forget(tenant.org_id)
    [r] = await schedules.fire_due(conn, now=at(2, 0))
    assert r.outcome == "fired" and r.detail is None
    assert [q["id"] for q in await requests_of(conn, s["id"])] == [r.request_id]


async def test_prune_deletes_old_fires_but_keeps_each_schedules_latest(conn, tenant):
    """`eve db prune` drops fires older than its cut-off; the latest fire of a schedule
    stays whatever its age (it is the schedule's "last result")."""
    busy = await make(conn, tenant, "busy", overlap="allow")
    quiet = await make(conn, tenant, "quiet", "0 3 * * *")
    for minute in range(3):
        await schedules.fire_due(conn, now=at(minute))
    await schedules.fire_due(conn, now=datetime(2026, 11, 26, 3, tzinfo=UTC))
    await conn.execute("UPDATE eve.schedule_fires SET fired_at = now() - interval '40 days'")
    await schedules.fire_due(conn, now=datetime(2026, 11, 26, 3, 1, tzinfo=UTC))  # one recent fire of busy
    before = {s: len(await fires_of(conn, s)) for s in (busy["id"], quiet["id"])}
    assert before == {busy["id"]: 5, quiet["id"]: 1}
    assert await schedules.prune_fires(conn, older_than_seconds=30 * 86400) == 4
    [kept] = await fires_of(conn, busy["id"])
    assert kept["fire_at"] == datetime(2026, 11, 26, 3, 1, tzinfo=UTC)
    assert len(await fires_of(conn, quiet["id"])) == 1  # old, but its only (latest) fire
    assert await schedules.prune_fires(conn, older_than_seconds=30 * 86400) == 0
