"""The scheduler loop: runs inside every worker process; no leader, no extra service.

Each process sleeps until the earliest `next_fire_at` of any enabled schedule, then
fires what is due (`eve.schedules.fire_due`). All processes wake for the same tick and
all try to fire it; the primary key of `eve.schedule_fires` lets exactly one through.
A schedule created, changed, paused or resumed anywhere sends `NOTIFY eve_schedules`,
which wakes every sleeper to re-read the next due time. While the LISTEN connection is
down the loop re-checks every few seconds instead, so nothing waits on a lost notify.

`EVE_SCHEDULER=0` turns the loop off in a worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from eve import hitl, schedules
from eve.db import as_service
from eve.errors import DatabaseUnavailable
from eve.listen import listen

log = logging.getLogger("eve.scheduler")
DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)
# Two processes firing the same tick at once can, rarely, trip over each other's locks;
# the tick is still fired exactly once, and the loser simply looks again.
RETRYABLE = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def enabled() -> bool:
    return os.environ.get("EVE_SCHEDULER", "1").strip().lower() not in ("0", "false", "no", "off")


class Scheduler:
    """Fires due schedules; `run()` until cancelled. `clock` is injectable for tests."""

    def __init__(self, pool: AsyncConnectionPool, dsn: str, *, name: str = "",
                 clock: Callable[[], datetime] | None = None, max_sleep_s: float = 300.0,
                 unlistened_sleep_s: float = 5.0) -> None:
        self.pool = pool
        self.dsn = dsn
        self.name = name
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.max_sleep_s = max_sleep_s
        self.unlistened_sleep_s = unlistened_sleep_s
        self.wakeup = asyncio.Event()
        self.listening = False
        self.fired = 0  # ticks this process won (for logs and tests)
        self.steps = 0
        self.asleep = False

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="scheduler-listener")
        delay = 0.5
        try:
            while True:
                self.wakeup.clear()
                try:
                    sleep_s = await self.step()
                    delay = 0.5
                except DB_ERRORS as exc:
                    log.warning("scheduler: database unavailable, retrying in %.1fs: %s", delay,
                                str(exc).strip()[:200])
                    sleep_s, delay = delay, min(delay * 2, 10.0)
                except RETRYABLE:
                    sleep_s = 0.05
                except Exception:  # a bug must not end scheduling for this process: log it, back off
                    log.exception("scheduler step failed; retrying in %.1fs", delay)
                    sleep_s, delay = delay, min(delay * 2, 10.0)
                self.asleep = True
                try:
                    await asyncio.wait_for(self.wakeup.wait(), sleep_s)
                except asyncio.TimeoutError:
                    pass
                self.asleep = False
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def step(self) -> float:
        """Fire what is due now; return how long to sleep before the next due tick."""
        self.steps += 1
        now = self.clock()
        async with as_service(self.pool) as conn:
            rows = await schedules.due(conn, now=now)
        failed = False
        for row in rows:
            try:
                # its own transaction: the fire commits (and releases its row) at once
                async with as_service(self.pool) as conn:
                    r = await schedules.fire_one(conn, row, now=now)
            except (*DB_ERRORS, *RETRYABLE):
                raise
            except Exception:  # one broken schedule must not hold back the others
                log.exception("schedule %s could not be fired", row["id"])
                failed = True
                continue
            if r is not None and r.outcome != "lost":
                self.fired += 1
                log.info("schedule %s: tick %s %s%s", r.schedule_id, r.fire_at.isoformat(), r.outcome,
                         f" (request {r.request_id})" if r.request_id else f" ({r.detail})" if r.detail else "",
                         extra={"request_id": r.request_id, "data": {"scheduler": self.name}})
        async with as_service(self.pool) as conn:
            nxt = await schedules.next_due(conn)
        nxt = await hitl.expire_and_next(self.pool, self.clock(), nxt)  # HITL questions expire here (#16)
        cap = self.max_sleep_s if self.listening else self.unlistened_sleep_s
        if failed:
            cap = min(cap, 5.0)  # a schedule that failed stays due: look again soon, but not in a hot loop
            if nxt is not None and nxt <= self.clock():
                return cap
        if nxt is None:
            return cap
        # a few ms late rather than early: an early wake finds nothing due and sleeps again
        return min(cap, max(0.0, (nxt - self.clock()).total_seconds() + 0.005))

    async def _listen(self) -> None:
        def up() -> None:
            self.listening = True
            self.wakeup.set()  # catch up with changes made while we were not listening

        def down() -> None:
            self.listening = False

        await listen(self.dsn, ["eve_schedules"], lambda _note: self.wakeup.set(), on_up=up, on_down=down)


def start(pool: AsyncConnectionPool, dsn: str, *, name: str = "") -> asyncio.Task[Any] | None:
    """The hook daemons call: a background task running the loop, or None when disabled."""
    if not enabled():
        return None
    return asyncio.create_task(Scheduler(pool, dsn, name=name).run(), name="scheduler")
