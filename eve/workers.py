"""The worker registry (`eve.workers`) and its bounded log (`eve.worker_logs`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from eve.queries import Q

AsyncConn = psycopg.AsyncConnection[Any]
LOG_KEEP = 1000


async def register(conn: AsyncConn, *, worker_id: str, worker_type: str, hostname: str, pid: int, version: str,
                   slots: int, sandbox: str = "none", network: str = "open",
                   limits: dict[str, Any] | None = None) -> None:
    """`limits`: the agents' limits and what holds each (eve.executor.cgroups.Limiter.describe)."""
    await conn.execute(Q.worker_register, {"id": worker_id, "worker_type": worker_type, "hostname": hostname,
                                           "pid": pid, "version": version, "slots": slots, "sandbox": sandbox,
                                           "network": network, "limits": Jsonb(limits) if limits else None})


async def heartbeat(conn: AsyncConn, worker_id: str, *, state: str, current_request_id: UUID | None,
                    disk_low: bool = False) -> bool:
    """Renew the worker's row; True when an operator asked it to drain (POST /workers/{id}/drain)."""
    cur = await conn.execute(Q.worker_heartbeat, {"id": worker_id, "state": state,
                                                  "current_request_id": current_request_id, "disk_low": disk_low})
    row = await cur.fetchone()
    return bool(row and (row["drain"] if isinstance(row, dict) else row[0]))


async def stopped(conn: AsyncConn, worker_id: str) -> None:
    await conn.execute(Q.worker_stopped, {"id": worker_id})


async def write_logs(conn: AsyncConn, worker_id: str, entries: Sequence[tuple[Any, ...]],
                     *, keep: int = LOG_KEEP) -> None:
    """Append (level, message, data[, at]) rows, then trim this worker's log to the newest `keep`.

    `at` is when the line was logged (the buffer is flushed a heartbeat later); without it, now.
    """
    if not entries:
        return
    await conn.execute(Q.worker_log_insert, {
        "worker_id": worker_id, "levels": [e[0] for e in entries], "messages": [e[1] for e in entries],
        "datas": [Jsonb(e[2]) for e in entries], "ats": [e[3] if len(e) > 3 else None for e in entries]})
    await conn.execute(Q.worker_log_trim, {"worker_id": worker_id, "keep": keep})
