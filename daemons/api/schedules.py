"""Routes for cron schedules: thin, each parses, calls one eve.schedules function, maps the row.

`{schedule}` in a path is the schedule's id, or its name within the caller's org (so
`eve schedule run nightly` needs no lookup). RLS hides other orgs' schedules: they 404.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import msgspec
from litestar import delete, get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter

from eve import limits, schedules
from eve.auth import Caller
from eve.daemons.api.errors import ERROR_RESPONSES
from eve.daemons.api.routes import ConfigIn, _org_id
from eve.daemons.api.serialize import config_out, request_out, ts
from eve.db import as_user
from eve.queries import Q

Json = dict[str, Any]
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class ScheduleIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    name: str
    cron_expression: str
    worker_type: str
    prompt: str
    timezone: str = "UTC"
    context: dict[str, Any] | None = None
    config: ConfigIn | None = None
    priority: int = 0
    overlap: str = "skip"
    max_delay_s: int = schedules.DEFAULT_MAX_DELAY_S
    enabled: bool = True


class SchedulePatch(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    name: str | Unset = UNSET
    cron_expression: str | Unset = UNSET
    worker_type: str | Unset = UNSET
    prompt: str | Unset = UNSET
    timezone: str | Unset = UNSET
    context: dict[str, Any] | Unset = UNSET
    config: ConfigIn | Unset = UNSET
    priority: int | Unset = UNSET
    overlap: str | Unset = UNSET
    max_delay_s: int | Unset = UNSET
    enabled: bool | Unset = UNSET


def _config(c: ConfigIn | None) -> dict[str, Any]:
    if c is None:
        return {}
    return {k: v for k, v in {"variant": c.variant, "model": c.model, "timeout_ms": c.timeout_ms,
                              "allowed_tools": c.allowed_tools}.items() if v is not None}


def schedule_out(row: dict[str, Any], *, now: datetime | None = None) -> Json:
    """A schedule row (with its latest fire) as the API's JSON, plus its next 5 fire times."""
    now = now or datetime.now(timezone.utc)
    t = row["request_template"] or {}
    upcoming: list[datetime] = []
    if row["enabled"] and row["next_fire_at"] is not None:
        upcoming = [row["next_fire_at"], *schedules.next_times(row["cron_expression"], row["timezone"],
                                                               row["next_fire_at"], 4)]
    last = None
    if row.get("last_outcome"):
        last = {"fireAt": ts(row["last_fire_at"]), "outcome": row["last_outcome"], "detail": row["last_detail"],
                "requestId": str(row["last_request_id"]) if row["last_request_id"] else None,
                "requestStatus": row["last_request_status"], "resultStatus": row["last_result_status"]}
    return {
        "id": str(row["id"]), "orgId": str(row["org_id"]), "userId": str(row["user_id"]), "name": row["name"],
        "cronExpression": row["cron_expression"], "timezone": row["timezone"], "workerType": row["worker_type"],
        "prompt": t.get("prompt"), "context": t.get("context") or {}, "config": config_out(t.get("config")),
        "priority": t.get("priority") or 0, "enabled": row["enabled"], "overlap": row["overlap"],
        "maxDelayS": row["max_delay_seconds"], "nextFireAt": ts(row["next_fire_at"]),
        "nextFireTimes": [ts(x) for x in upcoming], "lastFiredAt": ts(row["last_fired_at"]), "lastFire": last,
        "createdAt": ts(row["created_at"]), "updatedAt": ts(row["updated_at"]),
    }


@post("/schedules", status_code=201, tags=["schedules"], responses=ERROR_RESPONSES,
      summary="Create a cron schedule (400 names the bad cron field)")
async def create_schedule(data: ScheduleIn, caller: Caller, state: State) -> Json:
    spec = schedules.ScheduleSpec(
        name=data.name, cron_expression=data.cron_expression, worker_type=data.worker_type, prompt=data.prompt,
        timezone=data.timezone, context=data.context or {}, config=_config(data.config), priority=data.priority,
        enabled=data.enabled, overlap=data.overlap, max_delay_seconds=data.max_delay_s)
    async with as_user(state.pool, caller.user_id) as conn:
        row = await schedules.create(conn, spec, org_id=caller.org_id, user_id=caller.user_id)
    return schedule_out(row)


@get("/schedules", tags=["schedules"], responses=ERROR_RESPONSES, summary="Schedules, by name")
async def list_schedules(caller: Caller, state: State, org: str | None = None,
                         limit: Annotated[int, Parameter(ge=1, le=500)] = 500) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        org_id = await _org_id(conn, org)
        rows = await schedules.list_schedules(conn, org_id=org_id, limit=limit)
    return {"items": [schedule_out(r) for r in rows]}


@get("/schedules/{schedule:str}", tags=["schedules"], responses=ERROR_RESPONSES,
     summary="One schedule with its next 5 fire times and recent fires")
async def get_schedule(schedule: str, caller: Caller, state: State) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        row = await schedules.resolve(conn, schedule, org_id=caller.org_id)
        full = await schedules.get(conn, row["id"])
        recent = await schedules.fires(conn, row["id"], limit=20)
    out = schedule_out(full)
    out["fires"] = [{"fireAt": ts(f["fire_at"]), "outcome": f["outcome"], "detail": f["detail"],
                     "firedAt": ts(f["fired_at"]),
                     "requestId": str(f["request_id"]) if f["request_id"] else None,
                     "requestStatus": f["request_status"]} for f in recent]
    return out


@patch("/schedules/{schedule:str}", tags=["schedules"], responses=ERROR_RESPONSES,
       summary="Change a schedule (enabled=false pauses, true resumes from now: no catch-up burst)")
async def patch_schedule(schedule: str, data: SchedulePatch, caller: Caller, state: State) -> Json:
    changes: dict[str, Any] = {}
    for wire, attr in (("name", "name"), ("cron_expression", "cron_expression"), ("worker_type", "worker_type"),
                       ("prompt", "prompt"), ("timezone", "timezone"), ("context", "context"),
                       ("priority", "priority"), ("overlap", "overlap"), ("max_delay_s", "max_delay_seconds"),
                       ("enabled", "enabled")):
        value = getattr(data, wire)
        if value is not UNSET:
            changes[attr] = value
    if data.config is not UNSET:
        changes["config"] = _config(data.config)  # type: ignore[arg-type]
    async with as_user(state.pool, caller.user_id) as conn:
        row = await schedules.update(conn, schedule, changes, org_id=caller.org_id)
    return schedule_out(row)


@delete("/schedules/{schedule:str}", status_code=204, tags=["schedules"], responses=ERROR_RESPONSES,
        summary="Delete a schedule (requests it created stay, without scheduleId)")
async def delete_schedule(schedule: str, caller: Caller, state: State) -> None:
    async with as_user(state.pool, caller.user_id) as conn:
        await schedules.delete(conn, schedule, org_id=caller.org_id)


@post("/schedules/{schedule:str}/run", status_code=201, tags=["schedules"], responses=ERROR_RESPONSES,
      summary="Fire a schedule now (also when paused); returns the new request (429/402 past the org's limits)")
async def run_schedule(schedule: str, caller: Caller, state: State) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        found = await schedules.resolve(conn, schedule, org_id=caller.org_id)
        await limits.admit(conn, org_id=found["org_id"], key_id=caller.key_id)  # as POST /requests
        request_id = await schedules.run_now(conn, schedule, org_id=caller.org_id, user_id=caller.user_id)
        row = await (await conn.execute(Q.api_request_detail, {"id": request_id})).fetchone()
    return request_out(row)


HANDLERS = [create_schedule, list_schedules, get_schedule, patch_schedule, delete_schedule, run_schedule]
