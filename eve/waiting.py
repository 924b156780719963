"""The worker's side of waiting and wake-up (migration 0009): park, store, resume, deliver.

A turn whose agent ran `eve wait` ends in `park()`: the session (transcript, workspace
archive, totals) is saved and the request parked by `eve.request_park`. A woken request
is claimed like any other; `resume_state()` tells the worker it is a resume and what to
tell the agent (the outcome lines of the waits resolved and not yet delivered), and
`delivered()` marks those lines read once that turn has ended. Service role only: the
API never sees a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eve.models import Outcome
from eve.queries import Q


@dataclass
class ResumeState:
    session: dict[str, Any] | None  # the eve.request_sessions row, None when none was stored
    wait_ids: list[int]
    outcomes: list[str]


async def end_turn(conn: Any, request_id: UUID, worker_id: str) -> bool:
    """Revoke the agent's token; True when it asked to wait (the worker then parks it)."""
    row = await (await conn.execute(Q.turn_end, {"id": request_id, "worker_id": worker_id})).fetchone()
    return bool(row and row["wants"])


async def park(conn: Any, *, request_id: UUID, org_id: UUID, worker_id: str, session_id: str, transcript: bytes,
               transcript_path: str | None, archive: bytes | None, host: str, workspace_path: str,
               outcome: Outcome) -> str | None:
    """Save the session and park: 'waiting', 'pending' (already resolved) or None (not held)."""
    try:
        async with conn.transaction():
            await conn.execute(Q.session_save, {
                "request_id": request_id, "org_id": org_id, "session_id": session_id, "transcript": transcript,
                "transcript_path": transcript_path, "archive": archive,
                "archive_bytes": len(archive) if archive is not None else None, "kept": archive is not None,
                "host": host, "workspace_path": workspace_path, "active_ms": int(outcome.duration_ms or 0),
                "tokens": int(outcome.tokens_used or 0), "cost": outcome.cost_usd or 0})
            row = await (await conn.execute(Q.request_park, {"id": request_id, "worker_id": worker_id})).fetchone()
            if row is None or row["status"] is None:
                raise _NotHeld  # rolls the session back: the request is no longer ours
            return str(row["status"])
    except _NotHeld:
        return None


class _NotHeld(Exception):
    """The request was not held by this worker any more."""


async def resume_state(conn: Any, request_id: UUID) -> ResumeState:
    session = await (await conn.execute(Q.session_get, {"request_id": request_id})).fetchone()
    waits = await (await conn.execute(Q.waits_undelivered, {"request_id": request_id})).fetchall()
    return ResumeState(session=session, wait_ids=[w["id"] for w in waits],
                       outcomes=[w["outcome"] or f"{w['kind']} {w['ref_id']}: (no outcome)" for w in waits])


async def delivered(conn: Any, wait_ids: list[int]) -> None:
    if wait_ids:
        await conn.execute(Q.waits_mark_delivered, {"ids": wait_ids})


def add_totals(outcome: Outcome, session: dict[str, Any] | None) -> Outcome:
    """The final result counts every turn: durations (waiting excluded), tokens and cost."""
    if not session:
        return outcome
    outcome.duration_ms = int(outcome.duration_ms or 0) + int(session["active_ms"] or 0)
    outcome.tokens_used = int(outcome.tokens_used or 0) + int(session["tokens_used"] or 0)
    if outcome.cost_usd is not None or session["cost_usd"]:
        outcome.cost_usd = float(outcome.cost_usd or 0) + float(session["cost_usd"] or 0)
    return outcome


async def parked_among(conn: Any, ids: list[UUID]) -> set[UUID]:
    rows = await (await conn.execute(Q.requests_parked, {"ids": ids})).fetchall()
    return {r["id"] for r in rows}


async def abandoned_among(conn: Any, ids: list[UUID]) -> set[UUID]:
    """Those cancelled while no worker held them (a parked request's workspace is then left
    on the host that parked it, with nobody to remove it)."""
    if not ids:
        return set()
    rows = await (await conn.execute(Q.requests_abandoned, {"ids": ids})).fetchall()
    return {r["id"] for r in rows}


# -- thread continuations (migration 0013) -------------------------------------------------


async def continuation(conn: Any, request_id: UUID) -> dict[str, Any] | None:
    """The request this one continues and its kept session (session_id None: none kept);
    None when it continues nothing."""
    row = await (await conn.execute(Q.continuation_get, {"request_id": request_id})).fetchone()
    return dict(row) if row is not None else None


async def keep(conn: Any, *, request_id: UUID, org_id: UUID, session_id: str, transcript: bytes,
               transcript_path: str | None, archive: bytes | None, host: str, workspace_path: str,
               outcome: Outcome) -> None:
    """Keep a finished request's final session for a continuation; drop the one it continued."""
    await conn.execute(Q.session_keep, {
        "request_id": request_id, "org_id": org_id, "session_id": session_id, "transcript": transcript,
        "transcript_path": transcript_path, "archive": archive,
        "archive_bytes": len(archive) if archive is not None else None, "kept": archive is not None,
        "host": host, "workspace_path": workspace_path, "active_ms": int(outcome.duration_ms or 0),
        "tokens": int(outcome.tokens_used or 0), "cost": outcome.cost_usd or 0})


async def expire_kept(conn: Any, max_age_s: float) -> int:
    rows = await (await conn.execute(Q.sessions_kept_expire, {"max_age_s": max_age_s})).fetchall()
    return len(rows)
