"""One reconnecting LISTEN loop: a dedicated autocommit connection that waits for NOTIFYs.

Every long-lived process of eve sleeps on a channel (a schedule changed, a webhook is due)
and must survive the database going away: reconnect with backoff, and say when it is up
again, because whatever was notified while nobody listened has to be caught up by the
caller (a lost notification only delays work, never strands it). The scheduler and the
webhook outbox use it; the worker's and the SSE hub's listeners are older copies (#29).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from eve.db import connect
from eve.errors import DatabaseUnavailable

DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)


async def listen(dsn: str, channels: Sequence[str], on_notify: Callable[[Any], None], *,
                 on_up: Callable[[], None] | None = None, on_down: Callable[[], None] | None = None,
                 on_error: Callable[[Exception, float], None] | None = None, max_delay: float = 10.0) -> None:
    """LISTEN on `channels` until cancelled. `on_up` runs once each (re)connection listens (catch
    up there), `on_down` when it is lost, `on_error(exc, retry_in_s)` before each backoff."""
    delay = 0.5
    while True:
        try:
            conn = await connect(dsn, autocommit=True)
            try:
                for channel in channels:
                    await conn.execute(f"LISTEN {sql.Identifier(channel).as_string(conn)}")
                delay = 0.5
                if on_up is not None:
                    on_up()
                async for note in conn.notifies():
                    on_notify(note)
            finally:
                if on_down is not None:
                    on_down()
                await conn.close()
        except asyncio.CancelledError:
            raise
        except DB_ERRORS as exc:
            if on_error is not None:
                on_error(exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
