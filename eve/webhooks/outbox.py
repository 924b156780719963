"""Delivering the outbox: a loop in every worker process, no extra service.

The trigger of migration 0021 writes a delivery row in the transaction of the result it
announces and NOTIFYs `eve_webhooks`. Every worker runs this loop: it claims due rows with
FOR UPDATE SKIP LOCKED (each try counted and leased in the same statement), signs each
body (eve.webhooks.sign), posts it to the checked address (eve.webhooks.guard) without
following redirects, and records the answer. A 2xx is delivered; anything else is retried
on a schedule of about a day (5 s, 5 min, 30 min, 2 h, 5 h, 10 h; `EVE_WEBHOOK_RETRY_S`
sets another), then given up on; an endpoint with five given-up deliveries in a row is
disabled with the reason. At least once: a receiver that answered too late gets the
message again, with the same `webhook-id`.

`EVE_WEBHOOKS=0` turns the loop off in a worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from eve.db import as_service
from eve.errors import DatabaseUnavailable
from eve.listen import listen
from eve.orgsecrets import Keyring
from eve.queries import Q
from eve.webhooks import guard, sign

log = logging.getLogger("eve.webhooks")
DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)
RETRY_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)  # after tries 1..6; the 7th failure gives up
DISABLE_AFTER = 5
LEASE_S = 120.0
BATCH = 20


def retry_schedule(env: dict[str, str] | None = None) -> tuple[float, ...]:
    raw = (env if env is not None else os.environ).get("EVE_WEBHOOK_RETRY_S", "")
    return tuple(float(x) for x in raw.split(",") if x.strip()) if raw.strip() else RETRY_S


class Outbox:
    """Claims and sends due deliveries; `run()` until cancelled."""

    def __init__(self, pool: AsyncConnectionPool, dsn: str, keyring: Keyring | None, *,
                 allow: Sequence[guard.Network] = (), retry_s: Sequence[float] = RETRY_S,
                 poll_s: float = 30.0, timeout_s: float = 10.0) -> None:
        self.pool, self.dsn, self.keyring = pool, dsn, keyring
        self.allow, self.retry_s, self.poll_s = list(allow), tuple(retry_s), poll_s
        self.http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False)
        self.wakeup = asyncio.Event()
        self.sent = 0

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="webhooks-listener")
        delay = 0.5
        try:
            while True:
                self.wakeup.clear()
                try:
                    sleep_s = await self.step()
                    delay = 0.5
                except DB_ERRORS as exc:
                    log.warning("webhooks: database unavailable, retrying in %.1fs: %s", delay, str(exc)[:200])
                    sleep_s, delay = delay, min(delay * 2, 10.0)
                except Exception:  # a bug must not end deliveries for this process: log it, back off
                    log.exception("webhook delivery step failed; retrying in %.1fs", delay)
                    sleep_s, delay = delay, min(delay * 2, 10.0)
                try:
                    await asyncio.wait_for(self.wakeup.wait(), sleep_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await self.http.aclose()

    async def step(self) -> float:
        """Send what is due (a batch at a time); return how long to sleep before the next is due."""
        while True:
            async with as_service(self.pool) as conn:
                rows = await (await conn.execute(Q.webhook_claim_due, {"limit": BATCH, "lease_s": LEASE_S})).fetchall()
            if not rows:
                break
            outcomes = await asyncio.gather(*(self._send(r) for r in rows))
            async with as_service(self.pool) as conn:
                for row, (status, error) in zip(rows, outcomes):
                    await self._record(conn, row, status, error)
            if len(rows) < BATCH:
                break
        async with as_service(self.pool) as conn:
            nxt = (await (await conn.execute(Q.webhook_next_due)).fetchone())["at"]
        if nxt is None:
            return self.poll_s
        return min(self.poll_s, max(0.0, (nxt - datetime.now(timezone.utc)).total_seconds() + 0.01))

    async def _send(self, row: dict[str, Any]) -> tuple[int | None, str | None]:
        """(the receiver's HTTP status or None, why it did not count as delivered or None)."""
        if row["disabled_at"] is not None:
            return None, "the endpoint is disabled"
        if self.keyring is None:
            return None, "this worker has no EVE_SECRETS_KEY to sign with"
        body = json.dumps(row["payload"], separators=(",", ":")).encode()
        try:
            secret = self.keyring.decrypt(bytes(row["secret"]))
            target = await guard.resolve(row["url"], self.allow)
            headers = {**sign.headers(secret, row["message_id"], int(time.time()), body), "host": target.host_header,
                       "user-agent": "eve-horizon-webhooks"}
            resp = await self.http.post(target.url, content=body, headers=headers,
                                        extensions={"sni_hostname": target.sni} if target.sni else None)
        except guard.Refused as exc:
            return None, str(exc)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        except Exception as exc:  # noqa: BLE001 - a bad secret or URL fails this delivery, not the loop
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= resp.status_code < 300:
            return resp.status_code, None
        return resp.status_code, f"HTTP {resp.status_code}: {resp.text[:200]}"

    async def _record(self, conn: Any, row: dict[str, Any], status: int | None, error: str | None) -> None:
        if error is None:
            self.sent += 1
            await conn.execute(Q.webhook_delivered, {"id": row["id"], "status": status})
        elif row["attempts"] <= len(self.retry_s) and row["disabled_at"] is None:
            await conn.execute(Q.webhook_retry_later, {"id": row["id"], "status": status, "error": error,
                                                       "after_s": self.retry_s[row["attempts"] - 1]})
        else:
            await conn.execute(Q.webhook_give_up, {"id": row["id"], "status": status, "error": error,
                                                   "disable_after": DISABLE_AFTER})
            log.warning("webhook %s to %s given up after %d tries: %s", row["message_id"], row["url"],
                        row["attempts"], error)

    async def _listen(self) -> None:
        # on (re)connection: whatever was written while nobody listened
        await listen(self.dsn, ["eve_webhooks"], lambda _note: self.wakeup.set(), on_up=self.wakeup.set)


def enabled() -> bool:
    return os.environ.get("EVE_WEBHOOKS", "1").strip().lower() not in ("0", "false", "no", "off")


def start(pool: AsyncConnectionPool, dsn: str, keyring: Keyring | None) -> asyncio.Task[Any] | None:
    """The hook a worker calls: the delivery loop as a background task, or None when disabled."""
    if not enabled():
        return None
    outbox = Outbox(pool, dsn, keyring, allow=guard.allowed_networks(), retry_s=retry_schedule())
    return asyncio.create_task(outbox.run(), name="webhooks")
