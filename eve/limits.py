"""Per-org limits and budgets (#19): what an org may queue, how fast, and spend.

`admit()` runs inside the API's transaction that inserts a new request, as the caller
(RLS shows only the caller's org). Each API process keeps every org's limits row for
CACHE_TTL_S (a change made through this process applies at once, through another within
the TTL), so an org without limits pays no round trip at all on most submissions: the
API then sends the whole POST in one round trip (`known_unlimited()`;
tests/integration/api/test_roundtrips.py). With limits, admissions of that org are
serialised by a transaction-level advisory lock so `max_pending` holds under concurrent
submissions.
Running requests are never stopped by a limit: an org over budget finishes what runs.
The running cap is not checked here but in the claim (sql/queries.sql, claim_batch).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from eve.errors import EveError, ValidationError
from eve.queries import Q

AsyncConn = psycopg.AsyncConnection[Any]
MAX_INT = 2**31 - 1
MAX_BUDGET = Decimal("9999999999.99")  # numeric(12, 2)
LIMIT_FIELDS = ("max_running", "max_pending", "rate_per_minute", "monthly_budget_usd")
ADMISSION_FIELDS = ("max_pending", "rate_per_minute", "monthly_budget_usd")  # what admit() checks


class TooManyRequests(EveError):
    """429: a pending cap or a rate limit; `headers` carries Retry-After when there is one."""

    code = "too_many_requests"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}


class BudgetExceeded(EveError):
    code = "budget_exceeded"
    http_status = 402


class LimitsCache:
    """org id → its eve.org_limits row (or None), kept for ttl_s seconds."""

    def __init__(self, ttl_s: float = 10.0) -> None:
        self.ttl_s = ttl_s
        self._rows: dict[UUID, tuple[float, dict[str, Any] | None]] = {}

    async def get(self, conn: AsyncConn, org_id: UUID) -> dict[str, Any] | None:
        hit = self._fresh(org_id)
        if hit is not None:
            return hit[0]
        row = await (await conn.execute(Q.org_limits_get, {"org_id": org_id})).fetchone()
        if len(self._rows) > 10_000:
            self._rows.clear()
        self._rows[org_id] = (time.monotonic(), row)
        return row

    def known_unlimited(self, org_id: UUID) -> bool:
        """True when the cache holds, unexpired, that this org has no admission limit (so
        admit() would return without a statement); False when admit() must run."""
        hit = self._fresh(org_id)
        return hit is not None and _unlimited(hit[0])

    def _fresh(self, org_id: UUID) -> tuple[dict[str, Any] | None] | None:
        """(row,) while the cached row is younger than ttl_s (the row itself may be None:
        no limits set); None when it must be read."""
        hit = self._rows.get(org_id)
        if hit is None or time.monotonic() - hit[0] >= self.ttl_s:
            return None
        return (hit[1],)

    def forget(self, org_id: UUID) -> None:
        self._rows.pop(org_id, None)


CACHE = LimitsCache()


def _unlimited(row: dict[str, Any] | None) -> bool:
    """No admission limit in this org_limits row (or no row at all)."""
    return row is None or all(row[f] is None for f in ADMISSION_FIELDS)


async def admit(conn: AsyncConn, *, org_id: UUID, key_id: UUID | None, cache: LimitsCache = CACHE) -> None:
    """Raise TooManyRequests / BudgetExceeded if the org may not queue one more request now."""
    row = await cache.get(conn, org_id)
    if _unlimited(row):
        return
    await conn.execute(Q.admit_lock, {"org_id": str(org_id)})
    if row["rate_per_minute"] is not None and key_id is not None:
        rate = await (await conn.execute(Q.admit_rate, {"key_id": key_id, "org_id": org_id})).fetchone()
        if rate["n"] > row["rate_per_minute"]:
            wait = max(1, int(rate["retry_after"]))
            raise TooManyRequests(
                f"rate limit: this API key may submit {row['rate_per_minute']} requests per minute; "
                f"retry in {wait} s", retry_after=wait)
    if row["monthly_budget_usd"] is not None:
        spend = (await (await conn.execute(Q.admit_spend, {"org_id": org_id})).fetchone())["spend"]
        if Decimal(spend) >= Decimal(row["monthly_budget_usd"]):
            raise BudgetExceeded(
                f"monthly budget reached: this month's spend is ${Decimal(spend):.2f} of the "
                f"${Decimal(row['monthly_budget_usd']):.2f} budget; running requests finish, new ones are "
                "refused until the month ends or an operator raises the budget")
    if row["max_pending"] is not None:
        pending = (await (await conn.execute(Q.admit_pending, {"org_id": org_id})).fetchone())["n"]
        if pending >= row["max_pending"]:
            raise TooManyRequests(
                f"pending limit: this organization may have at most {row['max_pending']} pending requests "
                f"({pending} now); wait for some to be claimed")


def parse_limits(body: dict[str, Any]) -> dict[str, Any]:
    """Validated parameters for org_limits_upsert from a partial update (None clears a limit)."""
    known = {*LIMIT_FIELDS, "max_running_by_type", "platform_keys", "agent_limits"}
    unknown = set(body) - known
    if unknown:
        raise ValidationError(f"unknown limit {sorted(unknown)[0]!r}; use {', '.join(sorted(known))}")
    params: dict[str, Any] = {}
    for f in LIMIT_FIELDS:
        value = body.get(f)
        if value is not None:
            try:
                value = Decimal(str(value)) if f == "monthly_budget_usd" else int(value)
            except (ValueError, ArithmeticError):
                raise ValidationError(f"{f} must be a number, got {value!r}") from None
            top = MAX_BUDGET if f == "monthly_budget_usd" else MAX_INT
            if isinstance(body.get(f), bool) or not 0 <= value <= top:
                raise ValidationError(f"{f} must be a number from 0 to {top} (or null for no limit)")
        params[f] = value
        params[f"set_{f}"] = f in body
    by_type = body.get("max_running_by_type")
    if by_type is not None:
        if not isinstance(by_type, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_INT
                for k, v in by_type.items()):
            raise ValidationError('max_running_by_type must map worker types to numbers >= 0, e.g. {"general": 5}')
        by_type = Jsonb(by_type)
    params["max_running_by_type"] = by_type
    keys = body.get("platform_keys")
    if keys is not None and not isinstance(keys, bool):
        raise ValidationError("platform_keys must be true or false")
    params["platform_keys"] = keys
    agent = body.get("agent_limits")
    if agent is not None:
        from eve.executor.limits import AgentLimits, narrow

        try:  # the worker narrows with the same rules; null clears them
            narrow(AgentLimits(), agent, source="agentLimits")
        except EveError as exc:
            raise ValidationError(exc.message) from None
        agent = Jsonb({k: v for k, v in agent.items() if v})
    params["agent_limits"] = agent
    params["set_agent_limits"] = "agent_limits" in body
    return params
