"""SSE: per-org isolation on the firehose, resume by Last-Event-ID, and a database restart mid-stream."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve import migrate, queue
from eve.client import EveClient
from eve.pg import EmbeddedPostgres
from tests.support.apiserver import start_api
from tests.support.pgharness import FAST_SETTINGS
from tests.support.tenants import make_tenant


def collect(client: EveClient, n: int, timeout: float = 20, **kw: Any) -> tuple[asyncio.Task, asyncio.Event]:
    """Start reading the firehose; the event is set once the server has subscribed us."""
    opened = asyncio.Event()
    return asyncio.create_task(_collect(client, n, timeout, opened, **kw)), opened


async def _collect(client: EveClient, n: int, timeout: float, opened: asyncio.Event, **kw: Any) -> list[dict]:
    out: list[dict[str, Any]] = []

    async def run() -> None:
        async for ev in client.firehose(on_open=opened.set, **kw):
            out.append(ev.data)
            if len(out) >= n:
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except asyncio.TimeoutError:
        pass
    return out


async def add_events(dsn: str, tenant, kinds: list[str]) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        req = await queue.enqueue(c, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt="x")
        await queue.append_events(c, req.id, req.org_id, [(k, {"n": i}) for i, k in enumerate(kinds)])
        return req


async def test_two_orgs_each_see_only_their_own_events(api, conn, db_url):
    a, b = await make_tenant(conn, "sse-a"), await make_tenant(conn, "sse-b")
    async with EveClient(api.url, api_key=a.api_key) as ca, EveClient(api.url, api_key=b.api_key) as cb:
        got_a, open_a = collect(ca, 3)
        got_b, open_b = collect(cb, 2)
        await asyncio.wait_for(asyncio.gather(open_a.wait(), open_b.wait()), 20)
        req_a = await add_events(db_url, a, ["text", "text", "text"])
        req_b = await add_events(db_url, b, ["stderr", "stderr"])
        ev_a, ev_b = await got_a, await got_b
    assert [e["requestId"] for e in ev_a] == [str(req_a.id)] * 3
    assert [e["requestId"] for e in ev_b] == [str(req_b.id)] * 2
    assert all(e["workerType"] == "general" for e in ev_a + ev_b)


async def test_reconnect_with_last_event_id_misses_nothing(api, conn, db_url):
    a = await make_tenant(conn, "resume")
    async with EveClient(api.url, api_key=a.api_key) as c:
        first, opened = collect(c, 2)
        await asyncio.wait_for(opened.wait(), 20)
        await add_events(db_url, a, ["text", "text"])
        seen = await first
        last_id = None
        # while disconnected, more events happen
        req = await add_events(db_url, a, ["text", "tool_call", "text"])
        frames = []
        async for ev in c.firehose(last_event_id=str(seen[-1]["id"])):
            frames.append(ev.data)
            last_id = ev.id
            if len(frames) == 3:
                break
    assert [f["kind"] for f in frames] == ["text", "tool_call", "text"]
    assert all(f["requestId"] == str(req.id) for f in frames) and last_id == str(frames[-1]["id"])


@pytest.mark.slow
async def test_stream_resumes_after_a_database_restart(tmp_path):
    pg = EmbeddedPostgres(tmp_path / "pg", port=0, settings=FAST_SETTINGS)
    dsn = pg.start()
    api = None
    try:
        await migrate.migrate(dsn)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
            t = await make_tenant(c, "restart")
        api = start_api(dsn, tmp_path)
        api.wait_ready()
        async with EveClient(api.url, api_key=t.api_key) as client:
            got, opened = collect(client, 2, timeout=60)
            await asyncio.wait_for(opened.wait(), 20)
            await add_events(dsn, t, ["text"])
            pg.stop(mode="fast")
            pg.start()
            await add_events(dsn, t, ["after_restart"])
            events = await got
        assert [e["kind"] for e in events] == ["text", "after_restart"]
        assert "event listener lost the database" in api.output()
    finally:
        if api is not None:
            api.stop()
        pg.stop(mode="immediate")
