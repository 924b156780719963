"""Rows → the API's JSON (camelCase, ISO 8601 UTC timestamps), per docs/api.md."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

CONFIG_TO_WIRE = {"timeout_ms": "timeoutMs", "allowed_tools": "allowedTools"}
CONFIG_FROM_WIRE = {v: k for k, v in CONFIG_TO_WIRE.items()}


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def num(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def config_out(config: dict[str, Any] | None) -> dict[str, Any]:
    return {CONFIG_TO_WIRE.get(k, k): v for k, v in (config or {}).items()}


def _ms(start: datetime | None, end: datetime | None, now: datetime) -> int | None:
    if start is None:
        return None
    return max(0, int(((end or now) - start).total_seconds() * 1000))


def request_out(row: dict[str, Any], *, full: bool = True) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    out: dict[str, Any] = {
        "id": str(row["id"]), "orgId": str(row["org_id"]), "orgSlug": row.get("org_slug"),
        "userId": str(row["user_id"]),
        "workerType": row["worker_type"], "status": row["status"], "prompt": row["prompt"],
        "config": config_out(row.get("config")), "priority": row["priority"], "attempts": row["attempts"],
        "maxAttempts": row["max_attempts"], "claimedBy": row["claimed_by"], "claimedAt": ts(row["claimed_at"]),
        "createdAt": ts(row["created_at"]), "runAfter": ts(row["run_after"]), "startedAt": ts(row["started_at"]),
        "finishedAt": ts(row["finished_at"]), "leaseExpiresAt": ts(row["lease_expires_at"]),
        "cancelRequestedAt": ts(row["cancel_requested_at"]),
        "replayOf": str(row["replay_of"]) if row["replay_of"] else None,
        "parentId": str(row["parent_id"]) if row["parent_id"] else None,
        "scheduleId": str(row["schedule_id"]) if row.get("schedule_id") else None,
        "blockedBy": [str(b) for b in row.get("blocked_by") or []], "lastError": row["last_error"],
        "queuedMs": _ms(row["created_at"], row["started_at"], now),
        "durationMs": _ms(row["started_at"], row["finished_at"], now),
        "result": None,
    }
    if full:
        out["context"] = row.get("context") or {}
    if row.get("result_status"):
        out["result"] = {"status": row["result_status"], "summary": row["result_summary"],
                         "durationMs": row["result_duration_ms"], "tokensUsed": row["result_tokens_used"],
                         "costUsd": num(row["result_cost_usd"]), "error": row["result_error"],
                         "errorCode": row["result_error_code"]}
    return out


def result_out(row: dict[str, Any]) -> dict[str, Any]:
    return {"requestId": str(row["request_id"]), "status": row["status"], "output": row["output"],
            "summary": row["summary"], "durationMs": row["duration_ms"], "tokensUsed": row["tokens_used"],
            "costUsd": num(row["cost_usd"]), "error": row["error"], "errorCode": row["error_code"],
            "createdAt": ts(row["created_at"])}


def event_out(row: dict[str, Any]) -> dict[str, Any]:
    out = {"id": row["id"], "requestId": str(row["request_id"]), "orgId": str(row["org_id"]), "at": ts(row["at"]),
           "kind": row["kind"], "data": row["data"]}
    if row.get("worker_type") is not None:
        out["workerType"] = row["worker_type"]
    return out


def queue_out(row: Any) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    oldest = row.oldest_pending_at
    return {"workerType": row.worker_type, "pending": row.pending, "running": row.running,
            "oldestPendingAt": ts(oldest),
            "oldestPendingAgeS": round((now - oldest).total_seconds(), 3) if oldest else None,
            "completedLastHour": row.completed_last_hour, "failedLastHour": row.failed_last_hour,
            "cancelledLastHour": row.cancelled_last_hour}


def worker_out(row: dict[str, Any], lease_s: float) -> dict[str, Any]:
    age = float(row["heartbeat_age_s"] or 0)
    state = row["state"]
    if state != "stopped" and age > lease_s:
        state = "lost"
    return {"id": row["id"], "workerType": row["worker_type"], "hostname": row["hostname"], "pid": row["pid"],
            "version": row["version"], "state": state,
            "currentRequestId": str(row["current_request_id"]) if row["current_request_id"] else None,
            "slots": row["slots"], "slotsBusy": int(row["slots_busy"] or 0), "startedAt": ts(row["started_at"]),
            "heartbeatAt": ts(row["heartbeat_at"]), "heartbeatAgeS": round(age, 3),
            "sandbox": row.get("sandbox") or "none", "network": row.get("network") or "open",
            "limits": row.get("limits"),
            "diskLow": bool(row.get("disk_low")),
            "drainRequestedAt": ts(row.get("drain_requested_at"))}


def stats_out(row: dict[str, Any], window_s: float) -> dict[str, Any]:
    """One line of GET /stats: counts by outcome, p50/p95 wall time, cost, tokens, jobs per minute."""
    return {"completed": row["completed"], "failed": row["failed"], "cancelled": row["cancelled"],
            "p50Ms": None if row["p50_ms"] is None else int(row["p50_ms"]),
            "p95Ms": None if row["p95_ms"] is None else int(row["p95_ms"]),
            "costUsd": num(row["cost_usd"]) or 0.0, "tokens": int(row["tokens"] or 0),
            "jobsPerMin": round(row["finished"] / (window_s / 60), 3)}


def worker_type_out(wt: Any) -> dict[str, Any]:
    return {"id": wt.id, "name": wt.name, "dockerImage": wt.docker_image, "capabilities": wt.capabilities,
            "config": config_out(wt.config)}
