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
In poll-only mode (EVE_LISTEN=off, for PgBouncer in transaction pooling) the hub looks
for new rows every half second instead and tells the streams to catch up.

PostgreSQL sends `eve_events` only while some API process has announced live
subscribers in `eve.event_listeners` (migration 0003): a notifying commit is serialised
cluster-wide, and nobody should pay that for events no one watches. The first
subscriber announces, waits until every transaction that started before the
announcement has ended (those may not have notified), and only then replays from the
table; while subscribers remain the announcement is refreshed, without them it lapses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from litestar.response.sse import ServerSentEventMessage
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from eve.db import as_api, as_user, connect, listen_enabled
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
    def __init__(self, dsn: str, pool: AsyncConnectionPool, *, queue_size: int = 1000, poll_s: float = 0.5,
                 presence_ttl_s: float = 30.0, on_worker_types_changed: Callable[[], None] | None = None) -> None:
        self.dsn = dsn
        self.poll_s = poll_s
        # this LISTEN connection also hears eve_worker_types, for the API's worker-type cache
        self.on_worker_types_changed = on_worker_types_changed or (lambda: None)
        self.pool = pool
        self.queue_size = queue_size
        self.listener_id = f"api-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.presence_ttl_s = presence_ttl_s
        self._presence_until = 0.0  # monotonic time until which our announcement surely holds
        self._presence_lock = asyncio.Lock()
        self.subscribers: set[Subscriber] = set()
        self.last_id = 0
        self._primed = False  # last_id was read from the table once
        self.connected = asyncio.Event()
        self._ids: asyncio.Queue[int] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if listen_enabled():
            self._tasks = [asyncio.create_task(self._listen(), name="sse-listen"),
                           asyncio.create_task(self._keep_presence(), name="sse-presence")]
        else:
            self._tasks = [asyncio.create_task(self._poll(), name="sse-poll")]
        self._tasks.append(asyncio.create_task(self._dispatch(), name="sse-dispatch"))

    async def _poll(self) -> None:
        """Poll-only mode (EVE_LISTEN=off, PgBouncer): read new rows every `poll_s` instead."""
        delay = self.poll_s
        refreshed = time.monotonic()
        while True:
            if time.monotonic() - refreshed > 10:  # no eve_worker_types NOTIFY without LISTEN
                self.on_worker_types_changed()
                refreshed = time.monotonic()
            try:
                await self._backfill()
                self.connected.set()
                delay = self.poll_s
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as exc:
                self.connected.clear()
                log.warning("event poller lost the database; retrying in %.1fs: %s", delay, exc)
                delay = min(delay * 2, 10.0)
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sub in list(self.subscribers):
            self._drop(sub)
        if self._presence_until:
            try:  # bounded: with the database away, shutting down must not wait out the pool
                await asyncio.wait_for(self._withdraw(), 3)
            except (asyncio.TimeoutError, PoolTimeout, *DB_ERRORS):
                pass  # it expires on its own

    async def _withdraw(self) -> None:
        async with as_api(self.pool) as conn:
            await conn.execute(Q.api_event_listener_withdraw, {"id": self.listener_id})

    # -- presence: PostgreSQL notifies eve_events only while someone announced subscribers --

    async def ensure_presence(self) -> None:
        """Before a subscriber replays from the table: make sure new events will be notified.

        Cheap when the announcement is fresh; otherwise announces, waits for older
        transactions, and moves `last_id` up to what the table holds (events of the time
        nobody listened were never notified, and a new firehose starts after them).
        """
        if time.monotonic() < self._presence_until:
            return
        async with self._presence_lock:
            if time.monotonic() < self._presence_until:
                return
            await self._announce_and_settle()
            async with as_api(self.pool) as conn:
                row = await (await conn.execute(Q.api_last_event_id)).fetchone()
            self.last_id = max(self.last_id, int(row["id"]) if row else 0)

    async def _announce(self) -> None:
        started = time.monotonic()
        async with as_api(self.pool) as conn:
            await conn.execute(Q.api_event_listener_announce,
                               {"id": self.listener_id, "ttl_seconds": self.presence_ttl_s})
        self._presence_until = started + self.presence_ttl_s * 2 / 3

    async def _announce_and_settle(self, max_wait_s: float = 2.0) -> None:
        """Announce, then wait (bounded) until transactions older than the announcement ended:
        they may have inserted events without notifying, and must be visible to a replay."""
        await self._announce()
        async with as_api(self.pool) as conn:
            xmax = (await (await conn.execute(Q.api_snapshot_xmax)).fetchone())["xmax"]
            deadline = time.monotonic() + max_wait_s
            while time.monotonic() < deadline:
                if (await (await conn.execute(Q.api_snapshot_xmin)).fetchone())["xmin"] >= xmax:
                    return
                await asyncio.sleep(0.005)
        log.warning("a transaction older than the SSE announcement is still open; replaying anyway")

    async def _keep_presence(self) -> None:
        while True:
            await asyncio.sleep(self.presence_ttl_s / 3)
            if self.subscribers:
                try:
                    await self._announce()
                except DB_ERRORS as exc:
                    log.warning("could not refresh the SSE announcement: %s", exc)

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
                    await conn.execute("LISTEN eve_worker_types")
                    self.on_worker_types_changed()  # a change may have gone by while not listening
                    self._presence_until = 0.0  # the database may have restarted: announce again
                    if self.subscribers:
                        await self._announce_and_settle()
                    await self._backfill()
                    self.connected.set()
                    delay = 0.5
                    async for note in conn.notifies():
                        if note.channel == "eve_worker_types":
                            self.on_worker_types_changed()
                            continue
                        try:
                            payload = json.loads(note.payload)
                            ids = payload["ids"] if "ids" in payload else [payload["id"]]  # 0003 / 0001
                            for i in ids:
                                self._ids.put_nowait(int(i))
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
        """After (re)connecting, and on every poll in poll-only mode: each stream re-reads
        what it missed from the table, under its caller's identity (RLS)."""
        async with as_api(self.pool) as conn:  # only the newest id (a definer function), no event content
            row = await (await conn.execute(Q.api_last_event_id)).fetchone()
        newest = int(row["id"]) if row and row["id"] is not None else 0
        if self._primed and newest <= self.last_id:
            return  # nothing new
        self._primed = True
        self.last_id = max(self.last_id, newest)
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


class EncodedMessage(ServerSentEventMessage):
    """An SSE frame already encoded: Litestar sends these bytes as they are."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw

    def encode(self) -> bytes:
        return self.raw


def encoded(row: dict[str, Any], to_json: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
    """The SSE frame of a live event row, built once and shared by every subscriber it goes to.

    The hub hands one row dict to all of a caller's matching subscribers (up to hundreds of
    firehose streams): serialising it once instead of once per stream was most of the
    API's fan-out CPU per delivery.
    """
    cached = row.get("_frame")
    if cached is None or cached[0] is not to_json:
        raw = ServerSentEventMessage(data=msgspec.json.encode(to_json(row)).decode(), event="request_event",
                                     id=row["id"]).encode()
        cached = row["_frame"] = (to_json, raw)
    return cached[1]


Fetch = Callable[[int], Awaitable[list[dict[str, Any]]]]
TERMINAL = ("result", "error", "cancelled")  # event kinds after which a request may be finished
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
        await hub.ensure_presence()
        catch_up = True
        while True:
            if catch_up:  # from the table, under the caller's identity, in pages
                # asked before reading: a request finished by then has all its events in the
                # table (the result event commits with the result), so the replay holds them all
                finished = is_finished is not None and await is_finished()
                while True:
                    rows = await fetch_after(last)
                    for row in rows:
                        last = row["id"]
                        yield {"id": row["id"], "event": "request_event", "data": to_json(row)}
                    if len(rows) < 500:
                        break
                if finished:
                    yield {"event": "end", "data": {"status": "finished"}}
                    return
                catch_up = False
            try:  # no task per wait (wait_for made one): this runs once per event per subscriber
                row = sub.queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    async with asyncio.timeout(ping_s):
                        row = await sub.queue.get()
                except TimeoutError:
                    yield {"comment": "ping"}
                    continue
            if row.get("_dropped"):
                return
            if row.get("_catchup"):
                catch_up = True
                continue
            if row["id"] <= last:
                if is_finished is not None and row["kind"] in TERMINAL:
                    catch_up = True  # replayed already; the next pass sees the request finished and ends
                continue
            last = row["id"]
            yield {"raw": encoded(row, to_json)}
            if is_finished is not None and row["kind"] in TERMINAL and await is_finished():
                yield {"event": "end", "data": {"status": "finished"}}
                return
    finally:
        hub.unsubscribe(sub)
