"""Routes for tenants (#19): the caller's org and its usage, limits (operators), API keys,
members and the audit log. Thin: each parses, calls one eve.orgadmin function in the
caller's RLS transaction, maps the rows. `?org=SLUG` picks another org the caller sees
(operators: any); an org the caller does not see is 404, a member who is not an admin 403.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import delete, get, patch, post, put
from litestar.datastructures import State
from litestar.params import Parameter

from eve import limits, orgadmin
from eve.auth import Caller
from eve.daemons.api.errors import ERROR_RESPONSES
from eve.daemons.api.serialize import ts
from eve.db import as_user
from eve.errors import ValidationError
from eve.queries import Q

Json = dict[str, Any]
OrgParam = Annotated[str | None, Parameter(description="Organization slug (default: the API key's org)")]


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p.capitalize() for p in rest)


def out(row: dict[str, Any]) -> Json:
    """A row as the API's JSON: camelCase keys, ISO timestamps, numbers for money, strings for ids."""
    res: Json = {}
    for k, v in row.items():
        if isinstance(v, datetime):
            v = ts(v)
        elif isinstance(v, Decimal):
            v = float(v)
        elif isinstance(v, UUID):
            v = str(v)
        res[_camel(k)] = v
    return res


def org_out(row: dict[str, Any]) -> Json:
    o = out(row)
    budget = o.get("monthlyBudgetUsd")
    o["budgetUsedFraction"] = (round(o["monthSpendUsd"] / budget, 4) if budget else None)
    return o


class LimitsIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    max_running: int | None | msgspec.UnsetType = msgspec.UNSET
    max_running_by_type: dict[str, int] | None | msgspec.UnsetType = msgspec.UNSET
    max_pending: int | None | msgspec.UnsetType = msgspec.UNSET
    rate_per_minute: int | None | msgspec.UnsetType = msgspec.UNSET
    monthly_budget_usd: float | None | msgspec.UnsetType = msgspec.UNSET
    platform_keys: bool | None | msgspec.UnsetType = msgspec.UNSET
    # per-agent limits (#28) that narrow the workers': {"memory_mb": 1024, "max_minutes": 30}
    agent_limits: dict[str, float] | None | msgspec.UnsetType = msgspec.UNSET


class KeyIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    name: str = ""
    user: str | None = None  # a member's email (default: the caller)


class MemberIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    email: str
    role: str = "member"
    display_name: str | None = None


class MemberPatch(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    role: str


async def _org(conn: Any, caller: Caller, org: str | None) -> UUID:
    return await orgadmin.resolve_org(conn, caller.org_id, org)


# -- the org ---------------------------------------------------------------------------------------

@get("/orgs/current", tags=["orgs"], responses=ERROR_RESPONSES,
     summary="The caller's org: limits, pending and running requests, this month's spend against the budget")
async def org_current(caller: Caller, state: State, org: OrgParam = None) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        return org_out(await orgadmin.org_current(conn, await _org(conn, caller, org)))


@get("/orgs", tags=["orgs"], responses=ERROR_RESPONSES,
     summary="Every org the caller sees (operators: all) with pending, running and this month's spend")
async def orgs_usage(caller: Caller, state: State) -> list[Json]:
    async with as_user(state.pool, caller.user_id) as conn:
        rows = await (await conn.execute(Q.orgs_usage)).fetchall()
    return [org_out(r) for r in rows]


@put("/orgs/{slug:str}/limits", tags=["orgs"], responses=ERROR_RESPONSES,
     summary="Set an org's limits (operators only); fields not sent keep their value, null clears one")
async def set_limits(slug: str, data: LimitsIn, caller: Caller, state: State) -> Json:
    changes = {k: getattr(data, k) for k in LimitsIn.__struct_fields__ if getattr(data, k) is not msgspec.UNSET}
    if not changes:
        raise ValidationError("send at least one limit: maxRunning, maxRunningByType, maxPending, ratePerMinute, "
                              "monthlyBudgetUsd, platformKeys, agentLimits")
    params = limits.parse_limits(changes)
    async with as_user(state.pool, caller.user_id) as conn:
        org_id = await orgadmin.resolve_org(conn, caller.org_id, slug)
        row = await orgadmin.set_limits(conn, org_id, params, changes)
    limits.CACHE.forget(org_id)  # committed: this process applies it at once (others within limits' TTL)
    return org_out(row)


@get("/audit", tags=["orgs"], responses=ERROR_RESPONSES,
     summary="The org's audit log, newest first (owners, admins, operators)")
async def audit_log(caller: Caller, state: State, org: OrgParam = None,
                    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
                    before: Annotated[int | None, Parameter(ge=1, le=2**63 - 1, description="Only entries with a smaller id")]
                    = None
                    ) -> list[Json]:
    async with as_user(state.pool, caller.user_id) as conn:
        rows = await orgadmin.audit_list(conn, await _org(conn, caller, org), limit=limit, before=before)
    return [out(r) for r in rows]


# -- API keys --------------------------------------------------------------------------------------

@get("/api-keys", tags=["orgs"], responses=ERROR_RESPONSES, summary="The org's API keys (never their secrets)")
async def keys_list(caller: Caller, state: State, org: OrgParam = None) -> list[Json]:
    async with as_user(state.pool, caller.user_id) as conn:
        return [out(r) for r in await orgadmin.keys_list(conn, await _org(conn, caller, org))]


@post("/api-keys", status_code=201, tags=["orgs"], responses=ERROR_RESPONSES,
      summary="Create an API key for a member (default: yourself); the key is in this answer only")
async def key_create(caller: Caller, state: State, data: KeyIn | None = None, org: OrgParam = None) -> Json:
    data = data or KeyIn()
    async with as_user(state.pool, caller.user_id) as conn:
        row = await orgadmin.key_create(conn, await _org(conn, caller, org), name=data.name, for_user=data.user,
                                        caller_id=caller.user_id)
    return out(row)


@delete("/api-keys/{prefix:str}", status_code=200, tags=["orgs"], responses=ERROR_RESPONSES,
        summary="Revoke an API key by its prefix")
async def key_revoke(prefix: str, caller: Caller, state: State, org: OrgParam = None) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        return out(await orgadmin.key_revoke(conn, await _org(conn, caller, org), prefix))


# -- members ---------------------------------------------------------------------------------------

@get("/members", tags=["orgs"], responses=ERROR_RESPONSES, summary="The org's members and their roles")
async def members_list(caller: Caller, state: State, org: OrgParam = None) -> list[Json]:
    async with as_user(state.pool, caller.user_id) as conn:
        return [out(r) for r in await orgadmin.members_list(conn, await _org(conn, caller, org))]


@post("/members", status_code=201, tags=["orgs"], responses=ERROR_RESPONSES,
      summary="Add a member by email (the user is created if new)")
async def member_add(data: MemberIn, caller: Caller, state: State, org: OrgParam = None) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        return out(await orgadmin.member_add(conn, await _org(conn, caller, org), email=data.email, role=data.role,
                                             display_name=data.display_name))


@patch("/members/{who:str}", tags=["orgs"], responses=ERROR_RESPONSES,
       summary="Change a member's role (who: email or user id)")
async def member_patch(who: str, data: MemberPatch, caller: Caller, state: State, org: OrgParam = None) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        return out(await orgadmin.member_set_role(conn, await _org(conn, caller, org), who, data.role))


@delete("/members/{who:str}", status_code=200, tags=["orgs"], responses=ERROR_RESPONSES,
        summary="Remove a member (their keys for this org are revoked)")
async def member_remove(who: str, caller: Caller, state: State, org: OrgParam = None) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        return out(await orgadmin.member_remove(conn, await _org(conn, caller, org), who))


HANDLERS = [org_current, orgs_usage, set_limits, audit_log, keys_list, key_create, key_revoke, members_list,
            member_add, member_patch, member_remove]
