"""Queue operations on `eve.orchestration_requests` and its results and events.

Every function takes an open psycopg async connection (rows as dicts) and leaves the
identity to the caller: the API calls these inside an `eve_api` transaction so RLS
applies, workers as `service_role`. Statements come from sql/queries.sql by name.
Functions that change several rows open their own (possibly nested) transaction, so
they are atomic whatever the caller does.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from eve.errors import Conflict, InvalidWorkerType, NotFound, PayloadTooLarge, ResultConflict, ValidationError
from eve.executor import limits as agent_limits
from eve.models import Event, Outcome, QueueDepth, Request, Result, WorkerType
from eve.queries import Q
from eve.settings import QueueSettings
from eve.worker_types import WorkerTypeCache

AsyncConn = psycopg.AsyncConnection[Any]

# Config keys a request may carry; anything else is a typo we refuse rather than ignore.
CONFIG_KEYS = {"variant": str, "model": str, "timeout_ms": int, "allowed_tools": list}
# A variant becomes an executable name: never a path, never shell syntax.
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REAPER_LOCK_KEY = 0x65766552  # "eveR": the advisory lock only one reaper holds at a time
FINAL_STATUS = {"success": "completed", "failed": "failed", "timeout": "failed", "cancelled": "cancelled"}


# ---------------------------------------------------------------------------
# Input validation: nothing is written unless all of it passes.
# ---------------------------------------------------------------------------


def parse_uuid(value: Any, what: str = "request id") -> UUID:
    """A UUID from user input, or a ValidationError that names the field."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise ValidationError(f"{what} must be a UUID, got {str(value)[:80]!r}") from None


def validate_prompt(prompt: Any, settings: QueueSettings) -> str:
    if not isinstance(prompt, str):
        raise ValidationError("prompt must be a string")
    if not prompt.strip():
        raise ValidationError("prompt must not be empty")
    size = len(prompt.encode("utf-8"))
    if size > settings.max_prompt_bytes:
        raise PayloadTooLarge(f"prompt is {size} bytes; the limit is {settings.max_prompt_bytes} bytes (1 MB)")
    if "\x00" in prompt:
        raise ValidationError("prompt must not contain NUL characters")
    return prompt


def validate_context(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise ValidationError(f"context must be a JSON object, got {type(context).__name__}")
    try:
        text = json.dumps(context)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"context is not JSON-serialisable: {exc}") from None
    if "\\u0000" in text:
        raise ValidationError("context must not contain NUL characters")
    return context


def validate_config(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValidationError(f"config must be a JSON object, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key not in CONFIG_KEYS:
            raise ValidationError(f"unknown config key {key!r}; allowed: {', '.join(sorted(CONFIG_KEYS))}")
        if value is None:
            continue
        expected = CONFIG_KEYS[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ValidationError(f"config.{key} must be {expected.__name__}, got {type(value).__name__}")
        out[key] = value
    if "variant" in out and not VARIANT_NAME.match(out["variant"]):
        raise ValidationError(f"config.variant {out['variant']!r} is not a valid variant name (letters, digits, - _ .)")
    if "timeout_ms" in out and not (1000 <= out["timeout_ms"] <= 24 * 3600 * 1000):
        raise ValidationError("config.timeout_ms must be between 1000 (1 s) and 86400000 (24 h)")
    if "allowed_tools" in out and not all(isinstance(t, str) and t for t in out["allowed_tools"]):
        raise ValidationError("config.allowed_tools must be a list of tool names")
    return out


# ---------------------------------------------------------------------------
# Worker types
# ---------------------------------------------------------------------------


async def get_worker_type(conn: AsyncConn, name: str) -> WorkerType:
    if not isinstance(name, str) or not name:
        raise InvalidWorkerType(str(name))
    cur = await conn.execute(Q.worker_type_get, {"worker_type": name})
    row = await cur.fetchone()
    if row is None:
        raise InvalidWorkerType(name)
    return WorkerType.from_row(row)


async def list_worker_types(conn: AsyncConn) -> list[WorkerType]:
    cur = await conn.execute(Q.worker_types_list)
    return [WorkerType.from_row(r) for r in await cur.fetchall()]


# ---------------------------------------------------------------------------
# Enqueue, read
# ---------------------------------------------------------------------------


async def enqueue(
    conn: AsyncConn,
    *,
    org_id: UUID | str,
    user_id: UUID | str,
    worker_type: str,
    prompt: str,
    context: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    priority: int = 0,
    run_after: datetime | None = None,
    blocked_by: Sequence[UUID | str] = (),
    parent_id: UUID | str | None = None,
    replay_of: UUID | str | None = None,
    reply_to: dict[str, Any] | None = None,
    max_attempts: int | None = None,
    settings: QueueSettings | None = None,
    worker_types: WorkerTypeCache | None = None,
) -> Request:
    """Validate everything, then insert one pending request (the trigger notifies workers).

    With `worker_types` (the API's cache) and no blockers this is one statement, the
    INSERT; it opens no transaction of its own (no savepoint inside the caller's): the
    blocker check is a read and the insert one statement, atomic either way.
    """
    wt = await (worker_types.get(conn, worker_type) if worker_types else get_worker_type(conn, worker_type))
    params = insert_params(wt, org_id=org_id, user_id=user_id, prompt=prompt, context=context, config=config,
                           priority=priority, run_after=run_after, blocked_by=blocked_by, parent_id=parent_id,
                           replay_of=replay_of, reply_to=reply_to, max_attempts=max_attempts, settings=settings)
    if params["blocked_by"]:
        cur = await conn.execute(Q.requests_existing, {"ids": params["blocked_by"]})
        found = {r["id"] for r in await cur.fetchall()}
        missing = [str(b) for b in params["blocked_by"] if b not in found]
        if missing:
            raise ValidationError(f"blockedBy names requests that do not exist: {', '.join(missing)}")
    query = Q.request_insert_blocked if params["blocked_by"] else Q.request_insert
    row = await (await conn.execute(query, params)).fetchone()
    assert row is not None
    return Request.from_row(row)


def insert_params(
    wt: WorkerType,
    *,
    org_id: UUID | str,
    user_id: UUID | str,
    prompt: str,
    context: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    priority: int = 0,
    run_after: datetime | None = None,
    blocked_by: Sequence[UUID | str] = (),
    parent_id: UUID | str | None = None,
    replay_of: UUID | str | None = None,
    reply_to: dict[str, Any] | None = None,
    max_attempts: int | None = None,
    settings: QueueSettings | None = None,
) -> dict[str, Any]:
    """The parameters of `request_insert` (`request_insert_blocked` when `blocked_by` is
    not empty), every input validated (no database needed).

    enqueue() runs them; the API's fast path sends them in one round trip with the
    caller's identity (eve.db.one_statement_as_user) when nothing needs reading first.
    """
    settings = settings or QueueSettings()
    org = parse_uuid(org_id, "org id")
    user = parse_uuid(user_id, "user id")
    prompt = validate_prompt(prompt, settings)
    context = validate_context(context)
    config = validate_config(config)
    agent_limits.check_timeout(config.get("timeout_ms"), settings.agent_max_minutes, wt.config)
    if not isinstance(priority, int) or isinstance(priority, bool) or not -1000 <= priority <= 1000:
        raise ValidationError("priority must be a whole number between -1000 and 1000")
    blockers = [parse_uuid(b, "blockedBy entry") for b in blocked_by]
    parent = parse_uuid(parent_id, "parent id") if parent_id is not None else None
    if max_attempts is None:
        max_attempts = int(wt.config.get("max_attempts", 3))
    if max_attempts < 1:
        raise ValidationError("max_attempts must be at least 1")
    return {
        "org_id": org,
        "user_id": user,
        "worker_type": wt.id,
        "prompt": prompt,
        "context": Jsonb(context),
        "config": Jsonb(config),
        "priority": priority,
        "max_attempts": max_attempts,
        "run_after": run_after,
        "blocked_by": blockers,
        "parent_id": parent,
        "replay_of": replay_of,
        "reply_to": Jsonb(reply_to) if reply_to is not None else None,
        "workspace": None,
    }


async def get_request(conn: AsyncConn, request_id: UUID | str) -> Request:
    rid = parse_uuid(request_id)
    cur = await conn.execute(Q.request_get, {"id": rid})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"request {rid} not found")
    return Request.from_row(row)


async def get_result(conn: AsyncConn, request_id: UUID | str) -> Result:
    rid = parse_uuid(request_id)
    cur = await conn.execute(Q.result_get, {"request_id": rid})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no result for request {rid} (yet)")
    return Result.from_row(row)


# ---------------------------------------------------------------------------
# Claim, lease, process
# ---------------------------------------------------------------------------


async def claim(
    conn: AsyncConn,
    worker_type: str,
    worker_id: str,
    *,
    limit: int = 1,
    settings: QueueSettings | None = None,
) -> list[Request]:
    """Claim up to `limit` runnable requests of one type (SKIP LOCKED); logs `claimed` for each."""
    settings = settings or QueueSettings()
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_CLAIM:
        raise ValidationError(f"claim limit must be an integer from 1 to {MAX_CLAIM}, got {limit!r}")
    cur = await conn.execute(
        _claim_sql(limit),
        {"worker_type": worker_type, "worker_id": worker_id, "lease_seconds": settings.lease_seconds},
    )
    return [Request.from_row(r) for r in await cur.fetchall()]


MAX_CLAIM = 1000


@lru_cache(maxsize=None)
def _claim_sql(limit: int) -> str:
    """claim_batch with its LIMIT written in as a number (one statement text per batch size).

    Why: with `LIMIT $n` the planner cannot know the batch is small, so the generic plan
    of the prepared statement assumes a tenth of the pending rows and hash-joins them with
    a scan of the whole table (7 ms with 20,000 pending). PostgreSQL therefore re-plans
    the claim on every call (0.54 ms of planning per claim, half its cost). With the
    number in the text the generic plan is the custom one, and it is planned once per
    connection (tests/integration/test_query_plans.py checks both). `limit` is an int
    checked by claim(), never text from outside.
    """
    return Q.claim_batch.replace("%(limit)s", str(int(limit)))


async def claim_next_via_function(
    conn: AsyncConn, worker_type: str, worker_id: str, *, settings: QueueSettings | None = None
) -> Request | None:
    """The seed's `eve.claim_next_request()`; kept so SQL-level clients keep working."""
    settings = settings or QueueSettings()
    cur = await conn.execute(
        Q.claim_next_function,
        {"worker_type": worker_type, "worker_id": worker_id, "lease_seconds": settings.lease_seconds},
    )
    row = await cur.fetchone()
    return Request.from_row(row) if row else None


async def mark_processing(conn: AsyncConn, request_id: UUID, worker_id: str) -> Request:
    cur = await conn.execute(Q.mark_processing, {"id": request_id, "worker_id": worker_id})
    row = await cur.fetchone()
    if row is None:
        raise ResultConflict(f"request {request_id} is no longer held by {worker_id}")
    return Request.from_row(row)


async def renew_leases(
    conn: AsyncConn, worker_id: str, request_ids: Iterable[UUID], *, settings: QueueSettings | None = None
) -> dict[UUID, bool]:
    """Extend the leases this worker holds; returns {id: cancel_requested} for those it still holds."""
    settings = settings or QueueSettings()
    ids = list(request_ids)
    if not ids:
        return {}
    cur = await conn.execute(
        Q.renew_leases, {"ids": ids, "worker_id": worker_id, "lease_seconds": settings.lease_seconds}
    )
    return {r["id"]: r["cancel_requested"] for r in await cur.fetchall()}


# ---------------------------------------------------------------------------
# Finish: complete, fail (with retry), requeue
# ---------------------------------------------------------------------------


def without_nul(value: Any) -> Any:
    """`value` with every NUL character in its strings (keys too) replaced by U+FFFD.

    PostgreSQL's text and jsonb cannot hold NUL, and an agent decides what its tools print and
    what it answers (`head -c 9 /dev/zero`): one NUL in an event or a result used to fail the
    write, and with it the request, on every attempt."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nul(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    """json.dumps for agent-made data: one pass in the usual case, a scrubbed second one with a NUL."""
    text = json.dumps(value)
    return json.dumps(without_nul(value)) if "\\u0000" in text else text


def _scrubbed(outcome: Outcome) -> Outcome:
    if any(isinstance(v, str) and "\x00" in v for v in (outcome.summary, outcome.error)) or (
            outcome.output is not None and "\\u0000" in json.dumps(outcome.output)):
        return dataclasses.replace(outcome, summary=without_nul(outcome.summary), error=without_nul(outcome.error),
                                   output=without_nul(outcome.output))
    return outcome


def _result_event(outcome: Outcome) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {"status": outcome.status}
    if outcome.summary:
        data["summary"] = outcome.summary[:500]
    for key in ("duration_ms", "tokens_used", "error", "error_code"):
        value = getattr(outcome, key)
        if value is not None:
            data[key] = value if not isinstance(value, str) else value[:2000]
    if outcome.cost_usd is not None:
        data["cost_usd"] = float(outcome.cost_usd)
    kind = {"success": "result", "cancelled": "cancelled"}.get(outcome.status, "error")
    return kind, data


async def complete(conn: AsyncConn, request: Request, worker_id: str | None, outcome: Outcome) -> Result:
    """Write the one result row and the final status together, or raise ResultConflict.

    A second completion, or one from a worker whose lease was taken over, matches no
    in-flight row and so writes nothing. The common case is one statement (one round
    trip); a failure with dependents also fails those, in the same transaction.
    """
    if outcome.status not in FINAL_STATUS:
        raise ValidationError(f"unknown result status {outcome.status!r}")
    outcome = _scrubbed(outcome)
    kind, data = _result_event(outcome)
    params = {
        "id": request.id,
        "worker_id": worker_id,
        "final_status": FINAL_STATUS[outcome.status],
        "status": outcome.status,
        "output": Jsonb(outcome.output) if outcome.output is not None else None,
        "summary": outcome.summary,
        "duration_ms": outcome.duration_ms,
        "tokens_used": outcome.tokens_used,
        "cost_usd": outcome.cost_usd,
        "error": outcome.error,
        "error_code": outcome.error_code,
        "event_kind": kind,
        "event_data": Jsonb(data),
        "success": outcome.status == "success",
    }
    if outcome.status == "success":
        row = await (await conn.execute(Q.finish_request, params)).fetchone()
    else:
        async with conn.transaction():
            row = await (await conn.execute(Q.finish_request, params)).fetchone()
            if row is not None and row["has_dependents"]:
                await conn.execute(Q.fail_dependents, {"id": request.id})
    if row is None:
        raise ResultConflict(f"request {request.id} already has a result or is not held by {worker_id}")
    return Result.from_row(row)


async def complete_many(
    conn: AsyncConn, worker_id: str | None, items: Sequence[tuple[Request, Outcome]]
) -> dict[UUID, Result]:
    """complete() for many requests in one statement (finish_many); the results written, by id.

    Same guarantees as complete(), per request: written only while `worker_id` still holds
    it, at most one result ever, its closing event, dependents unblocked on success and
    failed on failure (in the same transaction). A request missing from the answer got no
    result from this call: the caller treats it as complete()'s ResultConflict. One round
    trip when every outcome is a success, as with complete().
    """
    if not items:
        return {}
    ids = [req.id for req, _ in items]
    if len(set(ids)) != len(ids):
        raise ValidationError("complete_many got the same request twice")
    items_json: list[dict[str, Any]] = []
    for req, outcome in items:
        if outcome.status not in FINAL_STATUS:
            raise ValidationError(f"unknown result status {outcome.status!r}")
        outcome = _scrubbed(outcome)
        kind, data = _result_event(outcome)
        items_json.append({
            "id": str(req.id), "worker_id": worker_id, "final_status": FINAL_STATUS[outcome.status],
            "status": outcome.status, "output": outcome.output, "summary": outcome.summary,
            "duration_ms": outcome.duration_ms, "tokens_used": outcome.tokens_used,
            "cost_usd": str(outcome.cost_usd) if outcome.cost_usd is not None else None,  # exact, as numeric
            "error": outcome.error, "error_code": outcome.error_code, "event_kind": kind, "event_data": data,
            "success": outcome.status == "success",
        })
    params = {"items": Jsonb(items_json), "n": len(items_json)}
    if all(item["success"] for item in items_json):
        rows = await (await conn.execute(Q.finish_many, params)).fetchall()
    else:
        async with conn.transaction():
            rows = await (await conn.execute(Q.finish_many, params)).fetchall()
            for row in rows:
                if row["has_dependents"]:
                    await conn.execute(Q.fail_dependents, {"id": row["request_id"]})
    return {row["request_id"]: Result.from_row(row) for row in rows}


def backoff_seconds(attempt: int, settings: QueueSettings) -> float:
    """Exponential: base, 2×base, 4×base, ... capped."""
    return min(settings.retry_base_seconds * (2 ** max(attempt - 1, 0)), settings.retry_max_seconds)


async def fail(
    conn: AsyncConn,
    request: Request,
    worker_id: str,
    outcome: Outcome,
    *,
    settings: QueueSettings | None = None,
) -> Result | None:
    """Retry a retryable failure later (None), or write the final failed/timeout result."""
    settings = settings or QueueSettings()
    if outcome.retryable and request.attempts < request.max_attempts:
        delay = backoff_seconds(request.attempts, settings)
        async with conn.transaction():
            cur = await conn.execute(
                Q.requeue_request,
                {"id": request.id, "worker_id": worker_id, "delay_seconds": delay, "refund": 0,
                 "error": outcome.error},
            )
            if await cur.fetchone() is None:
                raise ResultConflict(f"request {request.id} is no longer held by {worker_id}")
            await append_events(conn, request.id, request.org_id, [(
                "requeued",
                {"reason": outcome.error_code or "retry", "error": (outcome.error or "")[:500],
                 "attempt": request.attempts, "retry_in_s": delay},
            )])
        return None
    return await complete(conn, request, worker_id, outcome)


async def requeue(conn: AsyncConn, request: Request, worker_id: str, reason: str) -> None:
    """Give a request back without counting the attempt (graceful worker shutdown)."""
    async with conn.transaction():
        cur = await conn.execute(
            Q.requeue_request,
            {"id": request.id, "worker_id": worker_id, "delay_seconds": 0, "refund": 1, "error": None},
        )
        if await cur.fetchone() is None:
            raise ResultConflict(f"request {request.id} is no longer held by {worker_id}")
        await append_events(conn, request.id, request.org_id, [("requeued", {"reason": reason})])


# ---------------------------------------------------------------------------
# Cancel, replay
# ---------------------------------------------------------------------------


async def request_cancel(conn: AsyncConn, request_id: UUID | str) -> Request:
    """Cancel now if nobody runs it; else flag it so the running worker kills the agent."""
    rid = parse_uuid(request_id)
    async with conn.transaction():
        cur = await conn.execute(Q.request_get_for_update, {"id": rid})
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"request {rid} not found")
        req = Request.from_row(row)
        if req.finished:
            raise Conflict(f"request {rid} already finished ({req.status}); nothing to cancel")
        if req.status in ("pending", "waiting"):
            await conn.execute(
                Q.finish_unclaimed,
                {"id": rid, "final_status": "cancelled", "status": "cancelled",
                 "error": "cancelled before it ran", "error_code": "cancelled"},
            )
            await append_events(conn, rid, req.org_id, [("cancelled", {"while": req.status})])
            await conn.execute(Q.fail_dependents, {"id": rid})
        else:
            if req.cancel_requested_at is None:
                await conn.execute(Q.request_cancel_flag, {"id": rid})
                await append_events(conn, rid, req.org_id, [("cancel_requested", {})])
    return await get_request(conn, rid)


async def replay(conn: AsyncConn, request_id: UUID | str, *, user_id: UUID | str,
                 prompt: str | None = None) -> Request:
    """A new request with the same worker type, prompt (or an edited one), context and config; `replay_of` set."""
    original = await get_request(conn, request_id)
    async with conn.transaction():
        new = await enqueue(
            conn,
            org_id=original.org_id,
            user_id=user_id,
            worker_type=original.worker_type,
            prompt=prompt if prompt is not None else original.prompt,
            context=original.context,
            config=original.config,
            priority=original.priority,
            replay_of=original.id,
            parent_id=original.parent_id,
            max_attempts=original.max_attempts,
        )
        await append_events(conn, original.id, original.org_id, [("replayed", {"new_request_id": str(new.id)})])
    return new


# ---------------------------------------------------------------------------
# Reaper
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class ReapReport:
    ran: bool
    requeued: list[UUID]
    failed: list[UUID]


async def reap(conn: AsyncConn, *, limit: int = 100) -> ReapReport:
    """Return expired-lease requests to pending, or fail them `worker_lost` after max_attempts.

    Guarded by a transaction-scoped advisory lock: with many workers, one reaps and the
    others return at once (`ran=False`).
    """
    report = ReapReport(ran=False, requeued=[], failed=[])
    async with conn.transaction():
        cur = await conn.execute(Q.reaper_lock, {"key": REAPER_LOCK_KEY})
        row = await cur.fetchone()
        if not row or not row["locked"]:
            return report
        report.ran = True
        cur = await conn.execute(Q.expired_leases, {"limit": limit})
        for row in await cur.fetchall():
            await _recover(conn, row, report, reason="worker_lost",
                           lost=f"lease expired while held by {row['claimed_by']} (attempt {row['attempts']})")
    return report


async def release_claims(conn: AsyncConn, worker_id: str) -> ReapReport:
    """At a worker's start: requeue what its previous incarnation (same id) still holds.

    That process is gone, and with the sandbox its agents died with it, so there is no
    reason to wait for the lease: the requests run again at once. As with the reaper, a
    request out of attempts fails with `worker_lost`.
    """
    report = ReapReport(ran=True, requeued=[], failed=[])
    async with conn.transaction():
        cur = await conn.execute(Q.worker_claims, {"worker_id": worker_id})
        for row in await cur.fetchall():
            await _recover(conn, row, report, reason="worker_restarted",
                           lost=f"worker {worker_id} restarted while holding it (attempt {row['attempts']})")
    return report


async def _recover(conn: AsyncConn, row: dict[str, Any], report: ReapReport, *, reason: str, lost: str) -> None:
    """A request whose worker is gone: back to pending, or failed `worker_lost` after max_attempts."""
    if row["attempts"] < row["max_attempts"]:
        await conn.execute(Q.reap_requeue, {"id": row["id"], "error": lost})
        await append_events(conn, row["id"], row["org_id"],
                            [("requeued", {"reason": reason, "worker_id": row["claimed_by"],
                                           "attempt": row["attempts"]})])
        report.requeued.append(row["id"])
    else:
        req = await get_request(conn, row["id"])
        await complete(conn, req, row["claimed_by"], Outcome(
            status="failed", error=f"{lost}; gave up after {row['max_attempts']} attempts",
            error_code="worker_lost"))
        report.failed.append(row["id"])


# ---------------------------------------------------------------------------
# Stats and events
# ---------------------------------------------------------------------------


async def queue_depth(conn: AsyncConn, *, platform_wide: bool = False) -> list[QueueDepth]:
    """Per worker type. `platform_wide`: as eve_api, through the definer function the API
    uses for every org's counts (its role cannot bypass RLS); else as service_role."""
    cur = await conn.execute(Q.api_queue_depth if platform_wide else Q.queue_depth)
    return [QueueDepth.from_row(r) for r in await cur.fetchall()]


EventSpec = tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], datetime | None]


async def append_events(conn: AsyncConn, request_id: UUID, org_id: UUID, events: Sequence[EventSpec]) -> list[int]:
    """Insert a batch of (kind, data[, at]) events for one request in one round trip."""
    if not events:
        return []
    batch = [{"kind": e[0], "data": e[1],
              "at": e[2].isoformat() if len(e) > 2 and e[2] is not None else None}  # type: ignore[misc]
             for e in events]
    cur = await conn.execute(Q.event_insert_batch,
                             {"request_id": request_id, "org_id": org_id, "events": Jsonb(batch, dumps=_dumps)})
    return [r["id"] for r in await cur.fetchall()]


async def list_events(conn: AsyncConn, request_id: UUID | str, *, after: int = 0, limit: int = 1000) -> list[Event]:
    rid = parse_uuid(request_id)
    cur = await conn.execute(Q.events_list, {"request_id": rid, "after": after, "limit": limit})
    return [Event.from_row(r) for r in await cur.fetchall()]


async def prune(conn: AsyncConn, *, older_than_seconds: float, batch: int = 5000) -> int:
    """Delete finished requests (with their results and events) older than the cut-off."""
    total = 0
    while True:
        cur = await conn.execute(Q.prune_finished, {"older_than_seconds": older_than_seconds, "batch": batch})
        total += cur.rowcount
        if cur.rowcount < batch:
            return total
