"""Human in the loop: an agent asks a person a question and waits without holding a slot.

One core path per verb, so the API, the CLI, `eve ui` and Slack all behave the same:

* `ask` — the agent (authenticated by its request token) records a question. In one
  transaction: the question row, its `eve.request_waits` row (kind 'question') and the
  request's `wait_requested_at`. The worker parks the request when the agent exits
  (0009); nothing here is a second waiting mechanism.
* `answer_question` — a member of the org answers. The answer is checked against the
  options, recorded with who gave it, and the wait resolved with the line the resumed
  agent reads (`The human (<name>) answered "<question>": <answer>`), which wakes the
  request in the same statement. Called by POST /hitl/{id}/answer and by Slack's buttons.
* `expire_due` — run by every worker's scheduler loop: a question past its `expires_at`
  becomes `expired` and resolves its wait with `No answer by <time> to "<question>"`.

Question text and options come from an agent, which is untrusted: lengths are capped,
control characters refused (they would reach terminals and Slack), and the number of
open questions per request is bounded.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from eve import queue
from eve.db import as_service
from eve.errors import Conflict, NotFound, ValidationError
from eve.queries import Q

AsyncConn = psycopg.AsyncConnection[Any]
log = logging.getLogger("eve.hitl")

STATUSES = ("pending", "answered", "expired", "cancelled")
MAX_QUESTION = 2000
MAX_OPTIONS = 10
MAX_OPTION = 100
MAX_ANSWER = 4000
MAX_OPEN_PER_REQUEST = 5
DEFAULT_TIMEOUT_S = 24 * 3600
MIN_TIMEOUT_S = 1
MAX_TIMEOUT_S = 30 * 86400


class OptionNotAllowed(ValidationError):
    """An answer that is not one of the question's options; the message lists them."""

    code = "invalid_option"

    def __init__(self, answer: str, options: Sequence[str]) -> None:
        super().__init__(f"{answer!r} is not one of the options: {', '.join(options)}")
        self.options = list(options)


class AlreadyClosed(Conflict):
    """A second answer, or an answer to an expired or cancelled question."""

    code = "question_closed"


def _clean(text: Any, what: str, limit: int) -> str:
    """Stripped text without control characters (newline and tab allowed), at most `limit` long."""
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be text")
    text = text.strip()
    if not text:
        raise ValidationError(f"{what} must not be empty")
    if len(text) > limit:
        raise ValidationError(f"{what} is {len(text)} characters; the limit is {limit}")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text):
        raise ValidationError(f"{what} must not contain control characters")
    return text


def validate_options(options: Any) -> list[str]:
    if options is None:
        return []
    if not isinstance(options, list):
        raise ValidationError("options must be a list of strings")
    if len(options) > MAX_OPTIONS:
        raise ValidationError(f"at most {MAX_OPTIONS} options")
    out = [_clean(o, "an option", MAX_OPTION) for o in options]
    if any("\n" in o for o in out):
        raise ValidationError("an option must be one line")
    if len({o.casefold() for o in out}) != len(out):
        raise ValidationError("options must be different from each other")
    if len(out) == 1:
        raise ValidationError("give at least two options, or none for a free-text answer")
    return out


def validate_timeout(timeout_s: Any) -> float:
    if timeout_s is None:
        return float(DEFAULT_TIMEOUT_S)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        raise ValidationError("timeout must be a number of seconds")
    if not MIN_TIMEOUT_S <= timeout_s <= MAX_TIMEOUT_S:
        raise ValidationError(f"timeout must be between {MIN_TIMEOUT_S} s and {MAX_TIMEOUT_S // 86400} days")
    return float(timeout_s)


def match_answer(answer: Any, options: Sequence[str]) -> str:
    """The answer as stored: one of the options (matched ignoring case and spaces around), or free text."""
    text = _clean(answer, "answer", MAX_ANSWER)
    if not options:
        return text
    for option in options:
        if option.casefold() == text.casefold():
            return option
    raise OptionNotAllowed(text, options)


def fmt_time(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def answered_line(name: str, question: str, answer: str) -> str:
    return f'The human ({name}) answered "{question}": {answer}'


def expired_line(expires_at: datetime, question: str) -> str:
    return f'No answer by {fmt_time(expires_at)} to "{question}"'


# ---------------------------------------------------------------------------
# Asking (the agent)
# ---------------------------------------------------------------------------


async def ask(conn: AsyncConn, *, request_id: UUID, question: Any, options: Any = None,
              timeout_s: Any = None) -> dict[str, Any]:
    """Record a question for a running request and ask to park it; returns the question row.

    `conn` acts for the request's caller (RLS); the caller must already have established
    that the agent's token belongs to `request_id`.
    """
    text = _clean(question, "question", MAX_QUESTION)
    opts = validate_options(options)
    timeout = validate_timeout(timeout_s)
    async with conn.transaction():
        req = await (await conn.execute(Q.hitl_mark_waiting, {"request_id": request_id})).fetchone()
        if req is None:
            raise Conflict(f"request {request_id} is not running; only a running agent can ask")
        n = (await (await conn.execute(Q.hitl_open_for_request, {"request_id": request_id})).fetchone())["n"]
        if n >= MAX_OPEN_PER_REQUEST:
            raise Conflict(f"request {request_id} already has {n} open questions (limit {MAX_OPEN_PER_REQUEST})")
        expires_at = datetime.now(timezone.utc) + timedelta(seconds=timeout)
        row = await (await conn.execute(Q.hitl_insert, {
            "request_id": request_id, "org_id": req["org_id"], "question": text, "options": Jsonb(opts),
            "expires_at": expires_at})).fetchone()
        qid = row["id"]
        await conn.execute(Q.hitl_wait_insert, {"request_id": request_id, "org_id": req["org_id"], "id": qid})
        await queue.append_events(conn, request_id, req["org_id"], [("hitl_asked", {
            "question_id": str(qid), "question": text, "options": opts, "expires_at": expires_at.isoformat()})])
        await conn.execute(Q.hitl_wake_expiry)
    return await get_question(conn, qid)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def parse_statuses(status: str | None) -> list[str] | None:
    if not status:
        return None
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        raise ValidationError(f"unknown question status {bad[0]!r}; use one or more of {', '.join(STATUSES)}")
    return wanted or None


async def list_questions(conn: AsyncConn, *, statuses: list[str] | None = None, org_id: UUID | None = None,
                         request_id: UUID | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
    """(questions, total matching) the caller may see; pending-only lists are oldest first."""
    cur = await conn.execute(Q.hitl_list, {"statuses": statuses, "org_id": org_id, "request_id": request_id,
                                           "oldest_first": statuses == ["pending"], "limit": limit})
    rows = await cur.fetchall()
    return rows, int(rows[0]["total"]) if rows else 0


async def get_question(conn: AsyncConn, question_id: UUID | str) -> dict[str, Any]:
    qid = queue.parse_uuid(question_id, "question id")
    row = await (await conn.execute(Q.hitl_get, {"id": qid})).fetchone()
    if row is None:
        raise NotFound(f"question {qid} not found")
    return row


# ---------------------------------------------------------------------------
# Answering (a person: API, CLI, eve ui, Slack)
# ---------------------------------------------------------------------------


def _closed_message(row: dict[str, Any]) -> str:
    qid = row["id"]
    if row["status"] == "answered":
        answer = (row["response"] or {}).get("answer")
        return (f"question {qid} was already answered by {row['answered_by_name']} "
                f"at {fmt_time(row['answered_at'])}: {answer}")
    if row["status"] == "expired":
        return f"question {qid} expired at {fmt_time(row['expires_at'])} without an answer"
    return f"question {qid} was cancelled: its request ended before an answer"


async def answer_question(conn: AsyncConn, question_id: UUID | str, answer: Any, *, user_id: UUID,
                          name: str | None = None, via: str = "api") -> dict[str, Any]:
    """Answer a pending question as `user_id` and wake its request; returns the question row.

    `conn` acts for `user_id` under RLS (as_user): a question of an org the user is not a
    member of is NotFound, the same as one that does not exist. Raises OptionNotAllowed
    (400, lists the options), AlreadyClosed (409, says who answered first, or that it
    expired or was cancelled). `name` is what the agent is told; by default the user's
    display name or email. A question whose time ran out is refused even before the
    scheduler loop marks it expired, so the agent is never told both.
    """
    qid = queue.parse_uuid(question_id, "question id")
    async with conn.transaction():
        if await (await conn.execute(Q.hitl_lock_request, {"id": qid})).fetchone() is None:
            raise NotFound(f"question {qid} not found")
        row = await get_question(conn, qid)
        if row["status"] != "pending":
            raise AlreadyClosed(_closed_message(row))
        value = match_answer(answer, row["options"] or [])
        if name is None:
            found = await (await conn.execute(Q.hitl_user_name, {"user_id": user_id})).fetchone()
            name = found["name"] if found else str(user_id)
        done = await (await conn.execute(Q.hitl_answer, {
            "id": qid, "response": Jsonb({"answer": value, "via": via}), "user_id": user_id,
            "name": name})).fetchone()
        if done is None:  # pending, but its time ran out: the scheduler loop expires it
            raise AlreadyClosed(f"question {qid} expired at {fmt_time(row['expires_at'])} without an answer")
        await conn.execute(Q.hitl_resolve_wait, {"id": qid, "outcome": answered_line(name, row["question"], value)})
        await queue.append_events(conn, row["request_id"], row["org_id"], [("hitl_answered", {
            "question_id": str(qid), "answer": value, "answered_by": name, "via": via})])
    return await get_question(conn, qid)


# ---------------------------------------------------------------------------
# Expiry (every worker's scheduler loop, service role)
# ---------------------------------------------------------------------------


async def _expire(conn: AsyncConn, qid: UUID, *, now: datetime) -> dict[str, Any] | None:
    """Inside a transaction holding the request's lock: expire one question if it is due."""
    row = await (await conn.execute(Q.hitl_expire_one, {"id": qid, "now": now})).fetchone()
    if row is None:
        return None
    await conn.execute(Q.hitl_resolve_wait, {"id": qid, "outcome": expired_line(row["expires_at"], row["question"])})
    await queue.append_events(conn, row["request_id"], row["org_id"], [("hitl_expired", {
        "question_id": str(qid), "expires_at": row["expires_at"].isoformat()})])
    return row


@dataclass(frozen=True, slots=True)
class Expired:
    question_id: UUID
    request_id: UUID


async def expire_due(conn: AsyncConn, *, now: datetime | None = None, limit: int = 100) -> list[Expired]:
    """Expire every pending question whose time ran out (each in its own transaction)."""
    now = now or datetime.now(timezone.utc)
    ids = [r["id"] for r in await (await conn.execute(Q.hitl_due, {"now": now, "limit": limit})).fetchall()]
    out = []
    for qid in ids:
        async with conn.transaction():
            await conn.execute(Q.hitl_lock_request, {"id": qid})
            row = await _expire(conn, qid, now=now)
        if row is not None:  # another worker's loop may have expired it first
            out.append(Expired(question_id=qid, request_id=row["request_id"]))
    return out


async def next_expiry(conn: AsyncConn) -> datetime | None:
    return (await (await conn.execute(Q.hitl_next_expiry)).fetchone())["at"]


async def expire_and_next(pool: AsyncConnectionPool, now: datetime, nxt: datetime | None) -> datetime | None:
    """The scheduler loop's hook: expire what is due, and wake the loop for the next expiry too.

    Returns the earlier of `nxt` (the next schedule tick) and the next question expiry. A
    new question sends NOTIFY eve_schedules, so a sleeping loop re-reads this at once.
    """
    async with as_service(pool) as conn:
        for e in await expire_due(conn, now=now):
            log.info("question %s expired", e.question_id, extra={"request_id": e.request_id})
        at = await next_expiry(conn)
    if at is None:
        return nxt
    return at if nxt is None else min(nxt, at)
