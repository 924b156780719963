"""The worker's result coalescing (daemons/worker/results.py) on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from eve import queue
from eve.daemons.worker.results import ResultWriter
from eve.errors import ResultConflict
from eve.models import Outcome
from tests.support.tenants import make_tenant

pytestmark = pytest.mark.asyncio


class Runner:
    """What the worker's with_db does, minus retries: one transaction per call; counts calls."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.calls: list[int] = []
        self.lock = asyncio.Lock()
        self.fail_next: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, fn: Any) -> Any:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        async with self.lock:  # one connection here; the worker has a pool
            if self.fail_next is not None:
                exc, self.fail_next = self.fail_next, None
                raise exc
            async with self.conn.transaction():
                out = await fn(self.conn)
            self.calls.append(len(out))
            return out


@pytest.fixture
async def claimed(conn):
    t = await make_tenant(conn, "writer")
    await conn.execute("""INSERT INTO eve.orchestration_requests (org_id, user_id, worker_type, prompt)
                          SELECT %s, %s, 'general', 'job' FROM generate_series(1, 250)""", (t.org_id, t.user_id))
    return await queue.claim(conn, "general", "w1", limit=250)


async def test_results_finishing_together_share_one_statement(conn, claimed):
    run = Runner(conn)
    writer = ResultWriter(run, "w1", window_s=0.05)
    batch = claimed[:30]
    results = await asyncio.gather(*(writer.complete(r, Outcome(status="success", summary=str(r.id)))
                                     for r in batch))
    assert [res.summary for res in results] == [str(r.id) for r in batch]
    assert run.calls == [30]
    statuses = {(await queue.get_request(conn, r.id)).status for r in batch}
    assert statuses == {"completed"}


async def test_a_group_is_capped_at_max_batch(conn, claimed):
    run = Runner(conn)
    writer = ResultWriter(run, "w1", window_s=0.05, max_batch=100)
    results = await asyncio.gather(*(writer.complete(r, Outcome(status="success")) for r in claimed))
    assert len(results) == 250 and sorted(run.calls) == [50, 100, 100]


async def test_a_request_not_written_raises_result_conflict_for_that_waiter_only(conn, claimed):
    a, b = claimed[:2]
    await queue.complete(conn, a, "w1", Outcome(status="success", summary="earlier"))
    writer = ResultWriter(Runner(conn), "w1", window_s=0.05)
    got = await asyncio.gather(writer.complete(a, Outcome(status="success")),
                               writer.complete(b, Outcome(status="success", summary="b")),
                               return_exceptions=True)
    assert isinstance(got[0], ResultConflict) and got[1].summary == "b"
    assert (await queue.get_result(conn, a.id)).summary == "earlier"


async def test_a_database_error_reaches_every_waiter_of_the_group(conn, claimed):
    run = Runner(conn)
    run.fail_next = psycopg.OperationalError("server closed the connection unexpectedly")
    writer = ResultWriter(run, "w1", window_s=0.05)
    got = await asyncio.gather(*(writer.complete(r, Outcome(status="success")) for r in claimed[:3]),
                               return_exceptions=True)
    assert all(isinstance(g, psycopg.OperationalError) for g in got)
    # nothing was written, so the retry (the worker's with_db retries) writes all of them
    again = await asyncio.gather(*(writer.complete(r, Outcome(status="success")) for r in claimed[:3]))
    assert len(again) == 3 and run.calls == [3]


async def test_results_that_arrive_during_a_write_form_the_next_group(conn, claimed):
    run = Runner(conn)
    run.gate = asyncio.Event()
    writer = ResultWriter(run, "w1")  # no window: the first result goes at once
    first = asyncio.create_task(writer.complete(claimed[0], Outcome(status="success")))
    await asyncio.wait_for(run.entered.wait(), 10)  # its write is under way
    rest = [asyncio.create_task(writer.complete(r, Outcome(status="success"))) for r in claimed[1:21]]
    run.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 30)
    assert run.calls == [1, 20]
