"""SSE: per-org isolation on the firehose, resume by Last-Event-ID, and a database restart mid-stream."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import admin, migrate, queue
from eve.client import EveClient
from eve.pg import EmbeddedPostgres
from tests.support.apiserver import start_api
from tests.support.pgharness import FAST_SETTINGS
from tests.support.tenants import make_tenant
from tests.support.waiting import async_wait_for


async def add_events(dsn: str, tenant, kinds: list[str]) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        req = await queue.enqueue(c, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt="x")
        await queue.append_events(c, req.id, req.org_id, [(k, {"n": i}) for i, k in enumerate(kinds)])
        return req


def until(client: EveClient, done_kind: str, timeout: float = 30, seen: list[dict[str, Any]] | None = None,
          **kw: Any) -> tuple[asyncio.Task, asyncio.Event]:
    """Read the firehose until an event of `done_kind` arrives (or the deadline passes).

    The event is set once the server has subscribed us; `seen` fills as events arrive.
    """
    opened = asyncio.Event()
    out: list[dict[str, Any]] = seen if seen is not None else []

    async def run() -> list[dict[str, Any]]:

        async def read() -> None:
            async for ev in client.firehose(on_open=opened.set, **kw):
                out.append(ev.data)
                if ev.data["kind"] == done_kind:
                    return
        try:
            await asyncio.wait_for(read(), timeout)
        except asyncio.TimeoutError:
            out.append({"kind": "TIMED OUT", "requestId": None})
        return out

    return asyncio.create_task(run()), opened


def orgs_of(events: list[dict[str, Any]]) -> set[str]:
    return {e.get("orgId") for e in events}


async def test_two_orgs_each_see_only_their_own_events_in_both_directions(api, conn, db_url):
    a, b = await make_tenant(conn, "sse-a"), await make_tenant(conn, "sse-b")
    async with EveClient(api.url, api_key=a.api_key) as ca, EveClient(api.url, api_key=b.api_key) as cb:
        got_a, open_a = until(ca, "done_a")
        got_b, open_b = until(cb, "done_b")
        await asyncio.wait_for(asyncio.gather(open_a.wait(), open_b.wait()), 20)
        # interleaved, each side's end marker last: a leak in either direction lands before it
        req_a = await add_events(db_url, a, ["text", "text"])
        req_b = await add_events(db_url, b, ["stderr", "stderr"])
        await add_events(db_url, b, ["done_b"])
        await add_events(db_url, a, ["text", "done_a"])
        ev_a, ev_b = await got_a, await got_b
    assert [e["kind"] for e in ev_a] == ["text", "text", "text", "done_a"]
    assert [e["kind"] for e in ev_b] == ["stderr", "stderr", "done_b"]
    assert orgs_of(ev_a) == {str(a.org_id)} and orgs_of(ev_b) == {str(b.org_id)}
    assert ev_a[0]["requestId"] == str(req_a.id) and ev_b[0]["requestId"] == str(req_b.id)
    assert all(e["workerType"] == "general" for e in ev_a + ev_b)


async def test_reconnect_with_last_event_id_misses_nothing_and_adds_no_other_org(api, conn, db_url):
    a, b = await make_tenant(conn, "resume-a"), await make_tenant(conn, "resume-b")
    async with EveClient(api.url, api_key=a.api_key) as c:
        first, opened = until(c, "text")
        await asyncio.wait_for(opened.wait(), 20)
        await add_events(db_url, a, ["text"])
        seen = await first
        # while A is disconnected, both orgs work; B's events have ids between A's
        await add_events(db_url, b, ["b_text", "b_text"])
        req = await add_events(db_url, a, ["text", "tool_call"])
        await add_events(db_url, b, ["b_text"])
        await add_events(db_url, a, ["done"])
        resumed, _ = until(c, "done", last_event_id=str(seen[-1]["id"]))
        frames = await resumed
    assert [f["kind"] for f in frames] == ["text", "tool_call", "done"]
    assert frames[0]["requestId"] == str(req.id) and orgs_of(frames) == {str(a.org_id)}
    assert frames[0]["id"] > seen[-1]["id"]


async def test_a_membership_revoked_mid_stream_stops_the_events(api, conn, db_url):
    """The database decides per burst, not a set of orgs cached when the stream opened."""
    a, other = await make_tenant(conn, "revoke-a"), await make_tenant(conn, "revoke-other")
    await admin.add_member(conn, other.slug, a.email, "member")  # A's user is in both orgs
    async with EveClient(api.url, api_key=a.api_key) as c:
        seen: list[dict[str, Any]] = []
        got, opened = until(c, "done", seen=seen)
        await asyncio.wait_for(opened.wait(), 20)
        await add_events(db_url, other, ["before"])
        await async_wait_for(lambda: _has(seen, "before"), 20, "the stream to deliver 'before'")
        await conn.execute("DELETE FROM eve.org_members WHERE org_id = %s AND user_id = %s",
                           (other.org_id, a.user_id))
        await add_events(db_url, other, ["after_revoke"])
        await add_events(db_url, a, ["done"])
        events = await got
    assert [e["kind"] for e in events] == ["before", "done"]


async def _has(seen: list[dict[str, Any]], kind: str) -> bool:
    return any(e["kind"] == kind for e in seen)


@pytest.mark.slow
async def test_stream_resumes_after_a_database_restart_for_each_org_alone(tmp_path):
    pg = EmbeddedPostgres(tmp_path / "pg", port=0, settings=FAST_SETTINGS)
    dsn = pg.start()
    api = None
    try:
        await migrate.migrate(dsn)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
            a, b = await make_tenant(c, "restart-a"), await make_tenant(c, "restart-b")
        api = start_api(dsn, tmp_path)
        api.wait_ready()
        async with EveClient(api.url, api_key=a.api_key) as ca, EveClient(api.url, api_key=b.api_key) as cb:
            got_a, open_a = until(ca, "done_a", timeout=60)
            got_b, open_b = until(cb, "done_b", timeout=60)
            await asyncio.wait_for(asyncio.gather(open_a.wait(), open_b.wait()), 20)
            await add_events(dsn, a, ["text"])
            await add_events(dsn, b, ["text"])
            pg.stop(mode="fast")
            pg.start()
            # written at once, most likely before the API's listener is back: the catch-up path
            await add_events(dsn, b, ["b_after_restart"])
            await add_events(dsn, a, ["a_after_restart"])
            await add_events(dsn, b, ["done_b"])
            await add_events(dsn, a, ["done_a"])
            ev_a, ev_b = await got_a, await got_b
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            cur = await c.execute("SELECT id, org_id, kind FROM eve.request_events ORDER BY id")
            table = await cur.fetchall()
        why = f"{ev_a=}\n{ev_b=}\n{table=}\n{api.output()[-4000:]}"
        assert [e["kind"] for e in ev_a] == ["text", "a_after_restart", "done_a"], why
        assert [e["kind"] for e in ev_b] == ["text", "b_after_restart", "done_b"], why
        assert orgs_of(ev_a) == {str(a.org_id)} and orgs_of(ev_b) == {str(b.org_id)}
        assert "event listener lost the database" in api.output()
    finally:
        if api is not None:
            api.stop()
        pg.stop(mode="immediate")


async def test_the_api_stops_promptly_when_its_database_is_gone(tmp_path):
    """SIGTERM with a live subscriber and no database: the shutdown does not wait out the pool."""
    import signal
    import subprocess
    import time

    pg = EmbeddedPostgres(tmp_path / "pg", port=0, settings=FAST_SETTINGS)
    dsn = pg.start()
    api = None
    try:
        await migrate.migrate(dsn)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
            a = await make_tenant(c, "gone")
        api = start_api(dsn, tmp_path)
        api.wait_ready()
        async with EveClient(api.url, api_key=a.api_key) as ca:
            reading, opened = until(ca, "never", timeout=60)
            await asyncio.wait_for(opened.wait(), 20)  # subscribed: the hub announced itself
            pg.stop(mode="immediate")
            asked = time.monotonic()
            api.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(api.proc.wait, 20)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the API did not stop within 20 s of SIGTERM:\n{api.output()[-3000:]}")
            took = time.monotonic() - asked
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
        assert took < 15, f"stopping took {took:.1f} s"
    finally:
        if api is not None:
            api.stop()
        pg.stop(mode="immediate")
