"""SSE fan-out: one LISTEN connection per API process, many subscribers.

The hub LISTENs on `eve_events` (payload: event id, request id, org id) and, per burst
of notifications, fetches the named rows once per connected caller, as `eve_api` under
that caller's identity: row-level security decides what each caller receives, exactly
as for every other read of the API (there is no service-role read filtered in Python,
and a membership revoked mid-stream takes effect at the next burst). Subscribers then
apply only their own filters (request, worker type, org). A subscriber whose queue is
full is dropped — it never slows the others — and its client resumes with
Last-Event-ID, served from the table under the caller's identity. When the LISTEN
connection breaks (database restart), the hub reconnects with backoff and tells every
stream to catch up from the table, again under its caller's identity.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from eve.db import as_service, as_user, connect
from eve.errors import DatabaseUnavailable
from eve.queries import Q

log = logging.getLogger("eve.api.sse")
DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)


@dataclass(eq=False)
class Subscriber:
    user_id: UUID  # rows are fetched under this caller's identity (RLS)
    request_id: UUID | None = None
    worker_type: str | None = None
    org_filter: UUID | None = None
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(1000))
    dropped: bool = False

    def wants(self, row: dict[str, Any]) -> bool:
        """The subscriber's own filters; what the caller may see was decided by the database."""
        if self.request_id is not None and row["request_id"] != self.request_id:
            return False
        if self.worker_type is not None and row["worker_type"] != self.worker_type:
            return False
        return self.org_filter is None or row["org_id"] == self.org_filter


class Hub:
    def __init__(self, dsn: str, pool: AsyncConnectionPool, *, queue_size: int = 1000) -> None:
        self.dsn = dsn
        self.pool = pool
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.last_id = 0
        self.connected = asyncio.Event()
        self._ids: asyncio.Queue[int] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="sse-listen"),
                       asyncio.create_task(self._dispatch(), name="sse-dispatch")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sub in list(self.subscribers):
            self._drop(sub)

    def subscribe(self, sub: Subscriber) -> Subscriber:
        sub.queue = asyncio.Queue(self.queue_size)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _put(self, sub: Subscriber, item: dict[str, Any]) -> None:
        try:
            sub.queue.put_nowait(item)
        except asyncio.QueueFull:
            log.info("dropping a slow SSE subscriber (queue full)")
            self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        sub.dropped = True
        self.subscribers.discard(sub)
        try:
            sub.queue.put_nowait({"_dropped": True})
        except asyncio.QueueFull:
            sub.queue.get_nowait()
            sub.queue.put_nowait({"_dropped": True})

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                conn = await connect(self.dsn, autocommit=True)
                try:
                    await conn.execute("LISTEN eve_events")
                    await self._backfill()
                    self.connected.set()
                    delay = 0.5
                    async for note in conn.notifies():
                        try:
                            self._ids.put_nowait(int(json.loads(note.payload)["id"]))
                        except (ValueError, KeyError, TypeError):
                            continue
                finally:
                    self.connected.clear()
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as exc:
                log.warning("event listener lost the database; reconnecting in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _backfill(self) -> None:
        """After (re)connecting: each stream re-reads what it missed, under its caller's identity."""
        async with as_service(self.pool) as conn:  # only the newest id, no event content
            cur = await conn.execute(Q.api_last_event_id)
            row = await cur.fetchone()
        self.last_id = max(self.last_id, int(row["id"]) if row else 0)
        for sub in list(self.subscribers):
            self._put(sub, {"_catchup": True})

    async def _dispatch(self) -> None:
        while True:
            ids = [await self._ids.get()]
            while not self._ids.empty() and len(ids) < 1000:
                ids.append(self._ids.get_nowait())
            self.last_id = max(self.last_id, *ids)
            by_user: dict[UUID, list[Subscriber]] = {}
            for sub in list(self.subscribers):
                by_user.setdefault(sub.user_id, []).append(sub)
            for user_id, subs in by_user.items():
                try:
                    async with as_user(self.pool, user_id) as conn:
                        cur = await conn.execute(Q.api_visible_events_by_ids, {"ids": ids})
                        rows = await cur.fetchall()
                except DB_ERRORS as exc:
                    log.warning("could not fetch %d events: %s", len(ids), exc)
                    for sub in subs:  # they re-read from the table rather than miss these
                        self._put(sub, {"_catchup": True})
                    continue
                for row in rows:
                    for sub in subs:
                        if not sub.dropped and sub.wants(row):
                            self._put(sub, row)


Fetch = Callable[[int], Awaitable[list[dict[str, Any]]]]
Frame = dict[str, Any]


async def stream(hub: Hub, sub: Subscriber, *, after: int, fetch_after: Fetch,
                 is_finished: Callable[[], Awaitable[bool]] | None, ping_s: float,
                 to_json: Callable[[dict[str, Any]], dict[str, Any]]) -> AsyncIterator[Frame]:
    """Frames for one client: replay after `after` from the table, then live events.

    Subscribes before replaying so nothing falls in between; live rows at or below the
    last replayed id are skipped. With `is_finished`, ends with an `end` frame once the
    request is finished and everything has been sent.
    """
    hub.subscribe(sub)
    last = after
    try:
        catch_up = True
        while True:
            if catch_up:  # from the table, under the caller's identity, in pages
                while True:
                    rows = await fetch_after(last)
                    for row in rows:
                        last = row["id"]
                        yield {"id": row["id"], "event": "request_event", "data": to_json(row)}
                    if len(rows) < 500:
                        break
                if is_finished is not None and await is_finished():
                    yield {"event": "end", "data": {"status": "finished"}}
                    return
                catch_up = False
            try:
                row = await asyncio.wait_for(sub.queue.get(), ping_s)
            except asyncio.TimeoutError:
                yield {"comment": "ping"}
                continue
            if row.get("_dropped"):
                return
            if row.get("_catchup"):
                catch_up = True
                continue
            if row["id"] <= last:
                continue
            last = row["id"]
            yield {"id": row["id"], "event": "request_event", "data": to_json(row)}
            if is_finished is not None and row["kind"] in ("result", "error", "cancelled") and await is_finished():
                yield {"event": "end", "data": {"status": "finished"}}
                return
    finally:
        hub.unsubscribe(sub)
