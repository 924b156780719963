"""The durable outbound side: thread root, one progress message, the result — from the database.

Runs in `eve slack run` (not in the API): it reads every org's Slack threads and writes
their delivery state, which is the service role's job; the API's role stays eve_api only.
Several daemons may run: a thread is leased (`locked_until`) while one of them works on it.

Per thread, in order, each step's Slack call followed at once by a commit of what it
produced (a message ts, a cursor), so a crash repeats at most the one call in flight:

1. no root yet → chat.postMessage "queued · TYPE · #id"; its ts becomes reply_to.thread_ts;
2. open questions (hitl) not posted yet → one message each, a button per option;
3. events past the thread's cursor → post (first time) or chat.update the one progress
   message, at most every `progress_interval` seconds (a due update waits, it is not lost);
4. a result → last progress update, then the summary (or error code and message) with
   Replay and Show output buttons; the thread is done.

A failed call leaves the cursor where it was: 429 waits its Retry-After, 5xx and network
errors back off exponentially (capped), so a Slack outage delays messages and loses none.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from slack_sdk.errors import SlackApiError

from eve.db import as_service
from eve.queries import Q
from eve.slack import messages, webapi
from eve.slack.core import Installation, decrypt_rows

log = logging.getLogger("eve.slack.delivery")
LEASE_S = 60
INSTALLATIONS_TTL_S = 60.0
MAX_BACKOFF_S = 300.0
# Slack errors no retry can fix: the thread is given up at once (the request is untouched).
PERMANENT_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived", "restricted_action"})
# Anything else (a revoked token, Slack down) is retried for about a day at the capped backoff.
MAX_FAILURES = 300


@dataclass(frozen=True)
class DeliverySettings:
    poll_interval: float = 1.0
    progress_interval: float = 3.0
    batch: int = 20


def retry_delay(exc: BaseException, failures: int) -> float:
    """Seconds to wait after a failed Slack call: Retry-After on 429, else exponential with jitter."""
    if isinstance(exc, SlackApiError) and exc.response is not None and exc.response.status_code == 429:
        raw = (exc.response.headers or {}).get("Retry-After") or (exc.response.headers or {}).get("retry-after")
        try:
            return max(1.0, float(raw))
        except (TypeError, ValueError):
            return 30.0
    base = min(MAX_BACKOFF_S, 2.0 ** min(failures, 10))
    return base * (0.5 + random.random() / 2)


def permanent(exc: BaseException) -> bool:
    """A Slack refusal that will not change on a retry (PERMANENT_ERRORS)."""
    return (isinstance(exc, SlackApiError) and exc.response is not None and bool(exc.response.data)
            and exc.response.get("error") in PERMANENT_ERRORS)


def describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError) and exc.response is not None:
        return f"slack {exc.response.status_code}: {exc.response.get('error') if exc.response.data else ''}".strip()
    return f"{type(exc).__name__}: {exc}"[:500]


class Delivery:
    def __init__(self, pool: AsyncConnectionPool, key: bytes, settings: DeliverySettings | None = None,
                 client_factory: Callable[[str], Any] = webapi.client) -> None:
        self.pool = pool
        self.key = key
        self.settings = settings or DeliverySettings()
        self.client_factory = client_factory
        self._clients: dict[str, Any] = {}
        self._installations: dict[Any, Installation] = {}
        self._loaded_at = 0.0

    async def _installation(self, installation_id: Any) -> Installation | None:
        """Cached; read again for an unknown id and every INSTALLATIONS_TTL_S (a token replaced by
        `eve admin slack connect` is used within a minute)."""
        stale = time.monotonic() - self._loaded_at > INSTALLATIONS_TTL_S
        if stale or installation_id not in self._installations:
            self._loaded_at = time.monotonic()
            async with as_service(self.pool) as conn:
                rows = await (await conn.execute(Q.slack_installations_service)).fetchall()
            self._installations = {i.id: i for i in decrypt_rows(rows, self.key)}
            self._clients.clear()
        return self._installations.get(installation_id)

    def _client(self, inst: Installation) -> Any:
        if inst.team_id not in self._clients:
            self._clients[inst.team_id] = self.client_factory(inst.bot_token)
        return self._clients[inst.team_id]

    async def run(self, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Deliver until `stop` is set; a database outage is waited out. `wake` (set by
        `listen`) cuts the wait short when a new Slack request arrives."""
        wake = wake or asyncio.Event()
        idle_logged = False
        while not stop.is_set():
            wake.clear()
            try:
                worked = await self.tick()
            except Exception:  # noqa: BLE001 - the loop outlives a database restart
                log.warning("slack delivery tick failed; retrying", exc_info=True)
                worked = 0
            if worked:
                continue
            if not idle_logged:
                log.info("slack delivery: nothing due; next poll in %.1fs unless woken", self.settings.poll_interval)
                idle_logged = True
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
            await asyncio.wait(waiters, timeout=self.settings.poll_interval, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()


    async def tick(self) -> int:
        """One pass over the threads with something due; how many were handled."""
        async with as_service(self.pool) as conn:
            threads = await (await conn.execute(Q.slack_threads_due, {"limit": self.settings.batch,
                                                                     "lease_s": LEASE_S})).fetchall()
        for thread in threads:
            await self.deliver(thread)
        return len(threads)

    async def deliver(self, thread: dict[str, Any]) -> None:
        rid = thread["request_id"]
        try:
            inst = await self._installation(thread["installation_id"])
            if inst is None:  # disconnected while the thread was open: nothing can be posted
                await self._exec(Q.slack_thread_result_posted, {"request_id": rid, "ts": None, "cursor": 0})
                return
            delay = await self._deliver(thread, self._client(inst))
            await self._exec(Q.slack_thread_release, {"request_id": rid, "delay_s": delay})
        except Exception as exc:  # noqa: BLE001 - a failure is retried later, or given up for a reason
            async with as_service(self.pool) as conn:
                row = await (await conn.execute(Q.slack_thread_failed, {
                    "request_id": rid, "error": describe(exc), "delay_s": 0})).fetchone()
            failures = row["failures"] if row else 1
            if permanent(exc) or failures >= MAX_FAILURES:
                await self._exec(Q.slack_thread_gave_up, {"request_id": rid})
                log.warning("slack delivery for %s given up after %d failure(s): %s", rid, failures, describe(exc))
                return
            delay = retry_delay(exc, failures)
            await self._exec(Q.slack_thread_release, {"request_id": rid, "delay_s": delay})
            log.warning("slack delivery for %s failed (%s); retrying in %.1fs", rid, describe(exc), delay)

    async def _exec(self, query: str, params: dict[str, Any]) -> None:
        async with as_service(self.pool) as conn:
            await conn.execute(query, params)

    async def _state(self, rid: Any) -> dict[str, Any]:
        async with as_service(self.pool) as conn:
            row = await (await conn.execute(Q.slack_thread_state, {"request_id": rid})).fetchone()
        assert row is not None  # the thread row cascades with its request
        return row

    async def _deliver(self, thread: dict[str, Any], client: Any) -> float:
        """The steps due for one thread; returns seconds until it may be looked at again."""
        rid, channel = thread["request_id"], thread["channel"]
        state = await self._state(rid)
        root = thread["root_ts"]
        if root is None:
            resp = await client.chat_postMessage(channel=channel, text=messages.root_text(state, thread["slack_user"]))
            root = resp["ts"]
            await self._exec(Q.slack_thread_root_posted, {"request_id": rid, "ts": root})
        cursor = int(state["last_event_id"])
        await self._questions(thread, client, root)
        if state["finished"]:
            # the progress message's last word (posted now if the run was quicker than a poll)
            text = messages.progress_text(state)
            if thread["progress_ts"]:
                await client.chat_update(channel=channel, ts=thread["progress_ts"], text=text)
            elif state["claimed_by"]:
                resp = await client.chat_postMessage(channel=channel, thread_ts=root, text=text)
                await self._exec(Q.slack_thread_progress_posted, {"request_id": rid, "ts": resp["ts"],
                                                                  "cursor": cursor})
            await self._exec(Q.slack_thread_cursor, {"request_id": rid, "cursor": cursor})
            result = messages.result_message(state)
            resp = await client.chat_postMessage(channel=channel, thread_ts=root, **result)
            await self._exec(Q.slack_thread_result_posted, {"request_id": rid, "ts": resp["ts"], "cursor": cursor})
            return 0
        if cursor <= thread["event_cursor"]:
            return 0
        if thread["progress_at"] is not None:
            since = (state["now"] - thread["progress_at"]).total_seconds()
            if since < self.settings.progress_interval:
                return self.settings.progress_interval - since  # due, not yet: comes back then
        text = messages.progress_text(state)
        if thread["progress_ts"] is None:
            resp = await client.chat_postMessage(channel=channel, thread_ts=root, text=text)
            ts = resp["ts"]
        else:
            await client.chat_update(channel=channel, ts=thread["progress_ts"], text=text)
            ts = thread["progress_ts"]
        await self._exec(Q.slack_thread_progress_posted, {"request_id": rid, "ts": ts, "cursor": cursor})
        return 0

    async def _questions(self, thread: dict[str, Any], client: Any, root: str) -> None:
        """Each open question of the request, once, with one button per option (hitl)."""
        rid = thread["request_id"]
        async with as_service(self.pool) as conn:
            rows = await (await conn.execute(Q.slack_thread_questions, {
                "request_id": rid, "posted": list(thread["posted_questions"] or [])})).fetchall()
        for q in rows:
            await client.chat_postMessage(channel=thread["channel"], thread_ts=root, **messages.question_message(q))
            await self._exec(Q.slack_thread_question_posted, {"request_id": rid, "question_id": q["id"]})


async def listen(dsn: str, wake: asyncio.Event) -> None:
    """Set `wake` on every NOTIFY eve_slack (a new thread: its root is posted at once, not at
    the next poll). Runs until cancelled; reconnects after a database restart."""
    from eve.db import connect

    while True:
        try:
            conn = await connect(dsn)
            try:
                await conn.execute("LISTEN eve_slack")
                log.info("slack delivery: listening on eve_slack")
                wake.set()  # look once now: something may have arrived while not listening
                async for _ in conn.notifies():
                    wake.set()
            finally:
                await conn.close()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the poll covers the gap
            log.warning("slack delivery: LISTEN failed; polling until it is back", exc_info=True)
            await asyncio.sleep(5)
