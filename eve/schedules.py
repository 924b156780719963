"""Cron schedules: recurring requests that fire exactly once per tick.

Two halves:

* Pure time arithmetic (`parse_cron`, `next_after`, `next_times`, `decide`): no clock of
  its own, every "now" is passed in, so DST and catch-up are tested with fixed instants.
  Cron is parsed and evaluated by `cronsim` (Debian cron semantics, zoneinfo native):
  a daily 02:30 in Europe/Berlin runs at 03:00 on the spring-forward day (02:30 does not
  exist) and once, at the first 02:30, on the fall-back day.
* Database operations on `eve.schedules`/`eve.schedule_fires` (statements in
  sql/queries_schedules.sql). `fire_due` is what every scheduler process runs; the
  primary key of schedule_fires decides which process's fire of a tick goes through.

Missed ticks (everything was down) are never replayed as a burst: only the latest due
tick fires, and only if it is at most `max_delay_seconds` old; otherwise a `missed`
fire row records it and the schedule moves on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from cronsim import CronSim, CronSimError
from psycopg.types.json import Jsonb

from eve import limits, queue
from eve.errors import Conflict, InvalidWorkerType, NotFound, ValidationError
from eve.queries import Q
from eve.settings import QueueSettings

AsyncConn = psycopg.AsyncConnection[Any]
UTC = timezone.utc

MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
          "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
FIELDS_WITH_SECONDS = ("second", *FIELDS)
OVERLAP = ("skip", "allow")
DEFAULT_MAX_DELAY_S = 600
MAX_MAX_DELAY_S = 86400
# A scheduler wakes a few milliseconds after a tick; max_delay 0 still means "on time".
LATENESS_GRACE_S = 1.0
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
WORKER_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ACTIVE = ("pending", "claimed", "processing", "waiting")


class InvalidCron(ValidationError):
    code = "invalid_cron"


# ---------------------------------------------------------------------------
# Pure time arithmetic
# ---------------------------------------------------------------------------


def parse_cron(expr: Any, *, seconds: bool = False) -> str:
    """The normalised expression, or InvalidCron naming the bad field.

    People write 5 fields (or @hourly/@daily/@weekly/...). `seconds=True` also accepts
    cronsim's 6-field form with a leading seconds field: a test hook for seconds-scale
    schedules, never offered by the API or the CLI.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidCron("cron expression must not be empty; e.g. '0 3 * * *' or @daily")
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise InvalidCron(f"unknown cron macro {text!r}; use one of {', '.join(sorted(MACROS))}")
        return text.lower()
    parts = text.split(" ")
    names = FIELDS_WITH_SECONDS if seconds and len(parts) == 6 else FIELDS
    if len(parts) != len(names):
        raise InvalidCron(f"cron expression {text!r} has {len(parts)} fields; it needs 5: "
                          f"{' '.join(FIELDS)} (e.g. '0 3 * * *'), or @hourly/@daily/@weekly")
    try:
        CronSim(text, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise InvalidCron(_explain(text, parts, names, str(exc))) from None
    return text


def _explain(text: str, parts: list[str], names: tuple[str, ...], message: str) -> str:
    """cronsim says "Bad minute"; say which value, and what the field allows."""
    ranges = {"second": "0-59", "minute": "0-59", "hour": "0-23", "day-of-month": "1-31",
              "month": "1-12 or JAN-DEC", "day-of-week": "0-7 or SUN-SAT"}
    m = re.match(r"Bad (.+)", message)
    if m and m.group(1) in names:
        name = m.group(1)
        return (f"cron expression {text!r}: bad {name} field {parts[names.index(name)]!r} "
                f"(allowed: {ranges[name]}, with * , - /)")
    return f"cron expression {text!r}: {message}"


def parse_timezone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ValidationError("timezone must be an IANA time zone name such as Europe/Berlin or UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(f"timezone {name!r} is not an IANA time zone (e.g. Europe/Berlin, "
                              "America/New_York, UTC)") from None


def _expanded(expr: str) -> str:
    return MACROS.get(expr, expr)


def iter_after(expr: str, tz: str | ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Ticks strictly after `after`, ascending, as UTC datetimes.

    cronsim walks local wall-clock time; on a fall-back day the local clock passes the
    same times twice, so a tick that is not later than the previous one (or than
    `after`) is dropped: every tick is an instant that happens once.
    """
    zone = tz if isinstance(tz, ZoneInfo) else parse_timezone(tz)
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    last = after.astimezone(UTC)
    for local in CronSim(_expanded(expr), after.astimezone(zone)):
        at = local.astimezone(UTC)
        if at > last:
            last = at
            yield at


def next_after(expr: str, tz: str | ZoneInfo, after: datetime) -> datetime | None:
    """The first tick after `after` (None if the expression never matches again, e.g. 30 Feb)."""
    return next(iter_after(expr, tz, after), None)


def next_times(expr: str, tz: str | ZoneInfo, after: datetime, count: int = 5) -> list[datetime]:
    out: list[datetime] = []
    for at in iter_after(expr, tz, after):
        out.append(at)
        if len(out) >= count:
            break
    return out


@dataclass(frozen=True, slots=True)
class Decision:
    """What a scheduler does with one schedule at `now`."""

    fire_at: datetime | None  # the tick to record (None: nothing due)
    missed: bool  # the tick is older than max_delay: record it as missed, create nothing
    next_fire_at: datetime | None  # the first tick after now


def decide(expr: str, tz: str | ZoneInfo, next_fire_at: datetime, now: datetime,
           max_delay_s: float = DEFAULT_MAX_DELAY_S) -> Decision:
    """Due ticks at `now`: fire only the latest one, and only if it is at most max_delay old.

    Only the window [max(next_fire_at, now - max_delay), now] is walked, so a schedule
    that was down for a month costs a handful of iterations, not one per missed tick.
    """
    if next_fire_at > now:
        return Decision(None, False, next_fire_at)
    following = next_after(expr, tz, now)
    start = max(next_fire_at, now - timedelta(seconds=max_delay_s + LATENESS_GRACE_S))
    latest: datetime | None = None
    if start == next_fire_at:
        latest = next_fire_at  # next_fire_at is itself a tick
    for at in iter_after(expr, tz, start):
        if at > now:
            break
        latest = at
    if latest is not None:
        return Decision(latest, False, following)
    return Decision(next_fire_at, True, following)


# ---------------------------------------------------------------------------
# Rows and validation
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class ScheduleSpec:
    """A schedule as people describe it (create, or a patch merged onto the current one)."""

    name: str
    cron_expression: str
    worker_type: str
    prompt: str
    timezone: str = "UTC"
    context: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    enabled: bool = True
    overlap: str = "skip"
    max_delay_seconds: int = DEFAULT_MAX_DELAY_S

    def template(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "context": self.context, "config": self.config, "priority": self.priority}


PATCHABLE = {f for f in ScheduleSpec.__dataclass_fields__}


def validate(spec: ScheduleSpec, *, seconds: bool = False, settings: QueueSettings | None = None) -> ScheduleSpec:
    """Check every field (raising a ValidationError that names it); returns the normalised spec."""
    settings = settings or QueueSettings()
    if not isinstance(spec.name, str) or not NAME.match(spec.name):
        raise ValidationError(f"schedule name {str(spec.name)[:80]!r} must be 1-63 letters, digits, - _ . "
                              "(starting with a letter or digit)")
    if not isinstance(spec.worker_type, str) or not WORKER_TYPE.match(spec.worker_type):
        raise InvalidWorkerType(str(spec.worker_type)[:80])
    spec.cron_expression = parse_cron(spec.cron_expression, seconds=seconds)
    parse_timezone(spec.timezone)
    spec.prompt = queue.validate_prompt(spec.prompt, settings)
    spec.context = queue.validate_context(spec.context)
    spec.config = queue.validate_config(spec.config)
    if not isinstance(spec.priority, int) or isinstance(spec.priority, bool) or not -1000 <= spec.priority <= 1000:
        raise ValidationError("priority must be a whole number between -1000 and 1000")
    if spec.overlap not in OVERLAP:
        raise ValidationError(f"overlap must be 'skip' or 'allow', got {spec.overlap!r}")
    if (not isinstance(spec.max_delay_seconds, int) or isinstance(spec.max_delay_seconds, bool)
            or not 0 <= spec.max_delay_seconds <= MAX_MAX_DELAY_S):
        raise ValidationError(f"maxDelayS must be between 0 and {MAX_MAX_DELAY_S} seconds")
    if not isinstance(spec.enabled, bool):
        raise ValidationError("enabled must be true or false")
    return spec


def _first_tick(spec: ScheduleSpec, now: datetime) -> datetime | None:
    if not spec.enabled:
        return None
    at = next_after(spec.cron_expression, spec.timezone, now)
    if at is None:
        raise InvalidCron(f"cron expression {spec.cron_expression!r} never matches (e.g. 30 February)")
    return at


def spec_of(row: dict[str, Any]) -> ScheduleSpec:
    t = row["request_template"] or {}
    return ScheduleSpec(name=row["name"], cron_expression=row["cron_expression"], worker_type=row["worker_type"],
                        prompt=t.get("prompt", ""), timezone=row["timezone"], context=t.get("context") or {},
                        config=t.get("config") or {}, priority=int(t.get("priority") or 0), enabled=row["enabled"],
                        overlap=row["overlap"], max_delay_seconds=row["max_delay_seconds"])


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


# ---------------------------------------------------------------------------
# CRUD (the API runs these under the caller's RLS identity)
# ---------------------------------------------------------------------------


async def create(conn: AsyncConn, spec: ScheduleSpec, *, org_id: UUID | str, user_id: UUID | str,
                 now: datetime | None = None, seconds: bool = False) -> dict[str, Any]:
    spec = validate(spec, seconds=seconds)
    wt = await queue.get_worker_type(conn, spec.worker_type)
    cur = await conn.execute(Q.schedule_insert, {
        "org_id": queue.parse_uuid(org_id, "org id"), "user_id": queue.parse_uuid(user_id, "user id"),
        "name": spec.name, "cron_expression": spec.cron_expression, "timezone": spec.timezone,
        "worker_type": wt.id, "request_template": Jsonb(spec.template()), "enabled": spec.enabled,
        "overlap": spec.overlap, "max_delay_seconds": spec.max_delay_seconds,
        "next_fire_at": _first_tick(spec, _now(now))})
    row = await cur.fetchone()
    if row is None:
        raise Conflict(f"a schedule named {spec.name!r} already exists in this organization", code="schedule_exists")
    return await get(conn, row["id"])


def _key(ref: Any) -> tuple[UUID | None, str | None]:
    text = str(ref)
    try:
        return UUID(text), None
    except ValueError:
        if not NAME.match(text):
            raise ValidationError(f"{text[:80]!r} is neither a schedule id nor a schedule name") from None
        return None, text


async def resolve(conn: AsyncConn, ref: Any, *, org_id: UUID | str | None) -> dict[str, Any]:
    """The schedule row for an id, or a name in `org_id`; NotFound otherwise (or if RLS hides it)."""
    sid, name = _key(ref)
    cur = await conn.execute(Q.schedule_get, {"id": sid, "org_id": org_id, "name": name})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"schedule {ref} not found")
    return row


async def get(conn: AsyncConn, schedule_id: UUID) -> dict[str, Any]:
    rows = await list_schedules(conn, schedule_id=schedule_id)
    if not rows:
        raise NotFound(f"schedule {schedule_id} not found")
    return rows[0]


async def list_schedules(conn: AsyncConn, *, org_id: UUID | None = None, schedule_id: UUID | None = None,
                         limit: int = 500) -> list[dict[str, Any]]:
    """Rows with the latest fire (`last_outcome`, `last_request_status`, `last_result_status`)."""
    cur = await conn.execute(Q.schedules_list, {"id": schedule_id, "org_id": org_id, "limit": limit})
    return await cur.fetchall()


async def update(conn: AsyncConn, ref: Any, patch: dict[str, Any], *, org_id: UUID | str | None,
                 now: datetime | None = None) -> dict[str, Any]:
    """Merge `patch` (ScheduleSpec field names) onto the schedule; timing changes recompute next_fire_at."""
    unknown = set(patch) - PATCHABLE
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
    async with conn.transaction():
        row = await resolve(conn, ref, org_id=org_id)
        current = spec_of(row)
        spec = spec_of(row)
        for key, value in patch.items():
            setattr(spec, key, value)
        # a stored 6-field (test) expression stays valid as long as nobody changes it
        spec = validate(spec, seconds=spec.cron_expression == current.cron_expression)
        wt = await queue.get_worker_type(conn, spec.worker_type)
        timing = (spec.cron_expression, spec.timezone, spec.enabled) != (
            current.cron_expression, current.timezone, current.enabled)
        next_fire = _first_tick(spec, _now(now)) if timing else row["next_fire_at"]
        if spec.name != current.name:
            taken = await (await conn.execute(Q.schedule_name_taken, {
                "org_id": row["org_id"], "name": spec.name, "id": row["id"]})).fetchone()
            if taken:
                raise Conflict(f"a schedule named {spec.name!r} already exists in this organization",
                               code="schedule_exists")
        await conn.execute(Q.schedule_update, {
            "id": row["id"], "name": spec.name, "cron_expression": spec.cron_expression, "timezone": spec.timezone,
            "worker_type": wt.id, "request_template": Jsonb(spec.template()), "enabled": spec.enabled,
            "overlap": spec.overlap, "max_delay_seconds": spec.max_delay_seconds, "next_fire_at": next_fire})
    return await get(conn, row["id"])


async def delete(conn: AsyncConn, ref: Any, *, org_id: UUID | str | None) -> UUID:
    async with conn.transaction():
        row = await resolve(conn, ref, org_id=org_id)
        await conn.execute(Q.schedule_delete, {"id": row["id"]})
    return row["id"]


async def run_now(conn: AsyncConn, ref: Any, *, org_id: UUID | str | None, user_id: UUID | str) -> UUID:
    """Fire the schedule at once (paused or not, overlapping or not); returns the new request's id."""
    row = await resolve(conn, ref, org_id=org_id)
    cur = await conn.execute(Q.schedule_run_now, {"schedule_id": row["id"], "user_id": user_id})
    out = await cur.fetchone()
    if out is None:
        raise Conflict(f"schedule {row['name']} was fired at this very instant already; try again")
    return out["request_id"]


async def fires(conn: AsyncConn, schedule_id: UUID, *, limit: int = 20) -> list[dict[str, Any]]:
    cur = await conn.execute(Q.schedule_fires_list, {"schedule_id": schedule_id, "limit": limit})
    return await cur.fetchall()


# ---------------------------------------------------------------------------
# The scheduler's side (service role)
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class FireResult:
    schedule_id: UUID
    fire_at: datetime
    outcome: str  # fired | skipped | missed | refused (the org's limits) | lost (another process had it)
    request_id: UUID | None = None
    detail: str | None = None  # why it was refused


async def due(conn: AsyncConn, *, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Schedules whose next tick is at or before `now` (enabled ones only)."""
    cur = await conn.execute(Q.schedules_due, {"now": now, "limit": limit})
    return await cur.fetchall()


async def fire_one(conn: AsyncConn, row: dict[str, Any], *, now: datetime) -> FireResult | None:
    """Decide and fire one due schedule; None if nothing was due after all.

    The tick is admitted like any new request (eve.limits: the org's pending cap and
    monthly budget; a schedule has no API key, so no rate limit): when the org may not
    queue one more now, the tick is recorded as `refused` with the reason, and the
    schedule moves on to its next tick. The admission's lock and the tick share one
    transaction, so a burst of API submissions and the tick cannot both take the last
    pending place; an org without limits adds no statement once eve.limits has cached that.
    """
    d = decide(row["cron_expression"], row["timezone"], row["next_fire_at"], now, row["max_delay_seconds"])
    if d.fire_at is None:
        return None
    async with conn.transaction():
        refused = None
        if not d.missed:
            try:
                await limits.admit(conn, org_id=row["org_id"], key_id=None)
            except (limits.TooManyRequests, limits.BudgetExceeded) as exc:
                refused = exc.message
        res = await (await conn.execute(Q.schedule_fire_tick, {
            "schedule_id": row["id"], "expected": row["next_fire_at"], "fire_at": d.fire_at, "missed": d.missed,
            "next_fire_at": d.next_fire_at, "refused": refused})).fetchone()
    if res is None:
        return FireResult(row["id"], d.fire_at, "lost")
    return FireResult(row["id"], res["fire_at"], res["outcome"], res["request_id"],
                      refused if res["outcome"] == "refused" else None)


async def fire_due(conn: AsyncConn, *, now: datetime, limit: int = 100) -> list[FireResult]:
    """Fire every schedule due at `now`; safe to run in many processes at once.

    On an autocommit connection each fire commits on its own; the scheduler loop gives
    each its own transaction too, so one failing schedule cannot hold back the others.
    """
    out: list[FireResult] = []
    for row in await due(conn, now=now, limit=limit):
        r = await fire_one(conn, row, now=now)
        if r is not None:
            out.append(r)
    return out


async def next_due(conn: AsyncConn) -> datetime | None:
    row = await (await conn.execute(Q.schedules_next_due)).fetchone()
    return row["next_fire_at"] if row else None


async def prune_fires(conn: AsyncConn, *, older_than_seconds: float) -> int:
    """Delete fires older than the cut-off, except each schedule's latest: an every-minute
    schedule otherwise adds half a million rows a year."""
    cur = await conn.execute(Q.prune_schedule_fires, {"older_than_seconds": older_than_seconds})
    return cur.rowcount
