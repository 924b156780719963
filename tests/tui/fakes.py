"""A fake EveClient with fixed data, for deterministic Pilot and snapshot tests of `eve ui`.

It implements the same methods as eve.client.EveClient (the console's `Client` protocol)
and records every call, so tests can check what the UI asked the API to do.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta, timezone
from typing import Any

from eve.client import ApiError, ApiUnreachable, SseEvent

NOW = datetime(2026, 11, 25, 10, 30, 0, tzinfo=timezone.utc)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def make_request(i: int, status: str, worker_type: str = "general", prompt: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    created = NOW - timedelta(minutes=i * 3)
    rid = f"{i:08x}-0000-4000-8000-{i:012x}"
    finished = status in ("completed", "failed", "cancelled")
    result = None
    if finished:
        result = {"status": {"completed": "success", "failed": "failed", "cancelled": "cancelled"}[status],
                  "summary": "Reviewed 12 files; 2 issues found." if status == "completed" else None,
                  "durationMs": 45230, "tokensUsed": 12500, "costUsd": 0.0421,
                  "error": "API Error: 529 overloaded" if status == "failed" else None,
                  "errorCode": "api_error" if status == "failed" else None}
    return {
        "id": rid, "orgId": "00000000-0000-4000-8000-00000000000a", "userId": "00000000-0000-4000-8000-00000000000b",
        "workerType": worker_type, "status": status, "prompt": prompt or f"Review the auth module #{i}",
        "context": {"repo": "acme/api"}, "config": {"variant": "mclaude"}, "priority": 0,
        "attempts": 1 if status != "pending" else 0, "maxAttempts": 3,
        "claimedBy": "worker-vps1-4242" if status != "pending" else None,
        "claimedAt": iso(created + timedelta(seconds=1)) if status != "pending" else None,
        "createdAt": iso(created), "runAfter": iso(created),
        "startedAt": iso(created + timedelta(seconds=2)) if status not in ("pending",) else None,
        "finishedAt": iso(created + timedelta(seconds=47)) if finished else None,
        "leaseExpiresAt": None, "cancelRequestedAt": None, "replayOf": None, "parentId": None, "blockedBy": [],
        "lastError": None, "queuedMs": 2000, "durationMs": 45230 if finished else 12000, "result": result,
        **extra,
    }


def default_requests() -> list[dict[str, Any]]:
    statuses = ["processing", "failed", "completed", "pending", "completed", "cancelled", "completed", "failed"]
    types = ["general", "code-review", "general", "data", "general", "general", "code-review", "general"]
    return [make_request(i + 1, s, t) for i, (s, t) in enumerate(zip(statuses, types))]


def make_events(request_id: str, *, finished: bool = True, failed: bool = False) -> list[dict[str, Any]]:
    base = NOW - timedelta(minutes=3)
    kinds = [("claimed", {"worker_id": "worker-vps1-4242", "attempt": 1}),
             ("spawned", {"variant": "mclaude", "pid": 777}), ("skill_loaded", {"skill": "orchestration"}),
             ("tool_call", {"tool": "Read", "summary": "Read /src/auth/index.ts"}),
             ("tool_result", {"content": "export function login() {", "is_error": False}),
             ("tool_call", {"tool": "Grep", "summary": 'Grep "password" /src'}),
             ("text", {"text": "Looking at the password handling next."}),
             ("stderr", {"line": "warning: slow disk"})]
    if finished:
        kinds.append(("error", {"status": "failed", "error_code": "api_error", "error": "API Error: 529 overloaded"})
                     if failed else ("result", {"status": "success", "tokens_used": 12500, "cost_usd": 0.0421}))
    return [{"id": 100 + i, "requestId": request_id, "orgId": "o", "at": iso(base + timedelta(seconds=i * 4)),
             "kind": k, "data": d, "workerType": "general"} for i, (k, d) in enumerate(kinds)]


class FakeClient:
    base_url = "http://eve.example:3000"

    def __init__(self, *, down: bool = False, requests: list[dict[str, Any]] | None = None,
                 firehose_events: list[dict[str, Any]] | None = None) -> None:
        self.down = down
        self.hung = False  # every call waits forever, like an API process that was SIGSTOPped
        self.requests = requests if requests is not None else default_requests()
        self.firehose_events = firehose_events or []
        self.live_events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # pushed by tests while running
        self.calls: list[tuple[str, Any]] = []
        self.worker_rows: list[dict[str, Any]] | None = None
        self.drained: list[str] = []
        self.log_rows: list[dict[str, Any]] | None = None
        self.queue_rows: list[dict[str, Any]] | None = None  # replaces the fixed queue when set
        self.org_slugs = {"acme"}  # what `org=` may name; others are a 404, as the API answers

    async def _check(self, name: str, arg: Any = None) -> None:
        self.calls.append((name, arg))
        if self.hung:
            await asyncio.Event().wait()
        if self.down:
            raise ApiUnreachable("cannot reach API at http://eve.example:3000 (connection refused)")

    def count(self, name: str) -> int:
        return sum(1 for c in self.calls if c[0] == name)

    async def queue(self) -> list[dict[str, Any]]:
        await self._check("queue")
        if self.queue_rows is not None:
            return copy.deepcopy(self.queue_rows)
        return [
            {"workerType": "code-review", "pending": 3, "running": 1, "oldestPendingAt": iso(NOW),
             "oldestPendingAgeS": 95.0, "completedLastHour": 14, "failedLastHour": 2, "cancelledLastHour": 1,
             "workersAlive": 1},
            {"workerType": "data", "pending": 4, "running": 0, "oldestPendingAt": iso(NOW), "oldestPendingAgeS": 40.0,
             "completedLastHour": 1, "failedLastHour": 0, "cancelledLastHour": 0, "workersAlive": 0},
            {"workerType": "general", "pending": 12, "running": 4, "oldestPendingAt": iso(NOW),
             "oldestPendingAgeS": 312.0, "completedLastHour": 58, "failedLastHour": 5, "cancelledLastHour": 2,
             "workersAlive": 2},
        ]

    async def workers(self) -> list[dict[str, Any]]:
        await self._check("workers")
        def w(i: int, t: str, state: str, req: str | None, beat: float, sandbox: str = "bwrap",
              disk_low: bool = False) -> dict[str, Any]:
            return {"id": f"worker-vps1-{4240 + i}", "workerType": t, "hostname": "vps1", "pid": 4240 + i,
                    "version": "0.1.0", "state": state, "currentRequestId": req, "slots": 2,
                    "slotsBusy": 1 if req else 0, "startedAt": iso(NOW - timedelta(hours=2)),
                    "heartbeatAt": iso(NOW), "heartbeatAgeS": beat, "sandbox": sandbox, "diskLow": disk_low}
        if self.worker_rows is not None:
            return copy.deepcopy(self.worker_rows)
        return [w(1, "general", "busy", self.requests[0]["id"], 3.0), w(2, "general", "idle", None, 4.0, "none"),
                w(3, "code-review", "busy", self.requests[1]["id"], 2.0, "uid", True), w(4, "general", "lost", None, 191.0)]

    async def list_requests(self, *, status: str | None = None, worker_type: str | None = None,
                            org: str | None = None, q: str | None = None, since: str | None = None,
                            until: str | None = None, sort: str | None = None, limit: int = 50,
                            cursor: str | None = None) -> dict[str, Any]:
        """The API's search, on the fixed data: same parameters, a total and an opaque cursor."""
        await self._check("list_requests", {"cursor": cursor, "worker_type": worker_type, "status": status,
                                            "q": q, "org": org, "since": since, "until": until, "sort": sort})
        if org is not None and org not in self.org_slugs:  # the API's answer (GET /requests?org=nope)
            raise ApiError(404, "not_found", f"organization {org!r} not found")
        statuses = status.split(",") if status else None
        items = [r for r in self.requests
                 if (worker_type is None or r["workerType"] == worker_type)
                 and (statuses is None or r["status"] in statuses)
                 and (q is None or q.lower() in r["prompt"].lower() or r["id"].startswith(q.lower()))
                 and (since is None or r["createdAt"] >= since) and (until is None or r["createdAt"] < until)]
        if sort == "oldest":
            items.reverse()
        start = int(cursor) if cursor else 0
        page = items[start:start + limit]
        nxt = str(start + limit) if start + limit < len(items) else None
        return {"items": copy.deepcopy(page), "nextCursor": nxt, "total": len(items)}

    async def get_request(self, request_id: str) -> dict[str, Any]:
        await self._check("get_request", request_id)
        for r in self.requests:
            if r["id"] == request_id:
                return copy.deepcopy(r)
        raise ApiError(404, "not_found", f"request {request_id} not found")

    async def children(self, request_id: str) -> list[dict[str, Any]]:
        await self._check("children", request_id)
        return [{"id": r["id"], "parentId": request_id, "depth": 1, "status": r["status"],
                 "workerType": r["workerType"], "prompt": r["prompt"], "createdAt": r["createdAt"],
                 "replyToParent": True, "result": r["result"]}
                for r in self.requests if r.get("parentId") == request_id]

    async def get_result(self, request_id: str) -> dict[str, Any] | None:
        await self._check("get_result", request_id)
        r = await self.get_request(request_id)
        if r["result"] is None:
            return None
        return {"requestId": request_id, **r["result"],
                "output": {"type": "result", "result": r["result"]["summary"], "is_error": False}}

    async def list_events(self, request_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        await self._check("list_events", request_id)
        r = await self.get_request(request_id)
        finished = r["status"] in ("completed", "failed", "cancelled")
        return [e for e in make_events(request_id, finished=finished, failed=r["status"] == "failed")
                if e["id"] > after]

    async def stream_events(self, request_id: str, *, after: int = 0):  # noqa: ANN201
        await self._check("stream_events", request_id)
        await asyncio.Event().wait()  # a running request: nothing new in a fixed-data test
        yield SseEvent("end", None, {})

    async def firehose(self, **kw: Any):  # noqa: ANN201
        await self._check("firehose", kw)
        for ev in self.firehose_events:
            yield SseEvent("request_event", str(ev["id"]), ev)
        while True:
            ev = await self.live_events.get()
            yield SseEvent("request_event", str(ev["id"]), ev)

    async def worker_logs(self, worker_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        await self._check("worker_logs", worker_id)
        if self.log_rows is not None:
            return [r for r in self.log_rows if r["id"] > after]
        if after:
            return []
        return [{"id": 1, "at": iso(NOW - timedelta(minutes=5)), "level": "info", "message": f"worker {worker_id} "
                 "started: type=general slots=2", "data": {}},
                {"id": 2, "at": iso(NOW - timedelta(minutes=1)), "level": "warning",
                 "message": "database unavailable, retrying in 0.2s", "data": {}}]

    async def worker_types(self) -> list[dict[str, Any]]:
        await self._check("worker_types")
        return [{"id": t, "name": t, "dockerImage": "x", "capabilities": [], "config": {}}
                for t in ("code-review", "data", "general", "playwright")]

    async def create_request(self, worker_type: str, prompt: str, **kw: Any) -> dict[str, Any]:
        await self._check("create_request", {"worker_type": worker_type, "prompt": prompt, **kw})
        new = make_request(99, "pending", worker_type, prompt)
        self.requests.insert(0, new)
        return copy.deepcopy(new)

    async def cancel(self, request_id: str) -> dict[str, Any]:
        await self._check("cancel", request_id)
        return await self.get_request(request_id)

    async def replay(self, request_id: str, *, prompt: str | None = None) -> dict[str, Any]:
        await self._check("replay", request_id if prompt is None else (request_id, prompt))
        orig = await self.get_request(request_id)
        new = make_request(77 + len(self.calls), "pending", orig["workerType"], prompt or orig["prompt"],
                           replayOf=request_id)
        self.requests.insert(0, new)
        return copy.deepcopy(new)

    async def stats(self, *, window: str = "1h", worker_type: str | None = None,
                    org: str | None = None) -> dict[str, Any]:
        await self._check("stats", window)
        totals = {"completed": 73, "failed": 7, "cancelled": 3, "p50Ms": 45230, "p95Ms": 131000,
                  "costUsd": 3.0733, "tokens": 912500, "jobsPerMin": 1.38}
        return {"window": window, "totals": totals,
                "byType": [{"workerType": "general", **totals}], "byOrg": [{"org": "acme", **totals}]}

    async def drain_worker(self, worker_id: str) -> dict[str, Any]:
        await self._check("drain_worker", worker_id)
        self.drained.append(worker_id)
        return {"id": worker_id, "drainRequested": True}
