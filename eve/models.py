"""Typed rows. Each mirrors one table (or one query's shape) of sql/."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Self
from uuid import UUID

FINAL_REQUEST_STATUSES = frozenset({"completed", "failed", "cancelled"})
IN_FLIGHT_STATUSES = frozenset({"claimed", "processing"})
RESULT_STATUSES = frozenset({"success", "failed", "timeout", "cancelled"})


class _Row:
    """from_row(): build the dataclass from a dict row, ignoring unknown columns."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        names = _FIELD_NAMES.get(cls)
        if names is None:  # computed once per class: this runs for every row the queue reads
            names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))  # type: ignore[arg-type]
        return cls(**{k: v for k, v in row.items() if k in names})


_FIELD_NAMES: dict[type, frozenset[str]] = {}


@dataclass(slots=True)
class WorkerType(_Row):
    id: str
    name: str
    docker_image: str
    capabilities: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Request(_Row):
    id: UUID
    created_at: datetime
    org_id: UUID
    user_id: UUID
    worker_type: str
    status: str
    prompt: str
    context: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    workspace: str | None = None
    priority: int = 0
    claimed_at: datetime | None = None
    claimed_by: str | None = None
    attempts: int = 0
    max_attempts: int = 3
    run_after: datetime | None = None
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    last_error: str | None = None
    replay_of: UUID | None = None
    parent_id: UUID | None = None
    blocked_by: list[UUID] = field(default_factory=list)
    reply_to: dict[str, Any] | None = None
    schedule_id: UUID | None = None
    resumes: int = 0  # times it was woken after waiting (> 0: the next claim resumes a session)

    @property
    def finished(self) -> bool:
        return self.status in FINAL_REQUEST_STATUSES


@dataclass(slots=True)
class Result(_Row):
    id: UUID
    request_id: UUID
    org_id: UUID
    status: str
    output: Any = None
    summary: str | None = None
    duration_ms: int | None = None
    tokens_used: int | None = None
    cost_usd: Decimal | None = None
    error: str | None = None
    error_code: str | None = None
    created_at: datetime | None = None


@dataclass(slots=True)
class Event(_Row):
    id: int
    request_id: UUID
    org_id: UUID
    at: datetime
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class QueueDepth(_Row):
    worker_type: str
    pending: int
    oldest_pending_at: datetime | None
    running: int
    completed_last_hour: int
    failed_last_hour: int
    cancelled_last_hour: int = 0  # apart from failed: a cancel is an operator's choice, not a fault


@dataclass(slots=True)
class Outcome:
    """What an execution produced, before it becomes a result row."""

    status: str  # success | failed | timeout | cancelled
    output: Any = None
    summary: str | None = None
    duration_ms: int | None = None
    tokens_used: int | None = None
    cost_usd: float | Decimal | None = None
    error: str | None = None
    error_code: str | None = None
    retryable: bool = False
