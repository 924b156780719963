"""Route handlers. Thin: parse, call one core function under the caller's identity, map the result."""

from __future__ import annotations

import base64
import dataclasses
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from prometheus_client import CONTENT_TYPE_LATEST

from eve import __version__, auth, idempotency, limits, metrics, queue, reqtokens, tree
from eve.auth import Caller
from eve.db import as_api, as_user, one_statement_as_user
from eve.errors import Forbidden, NotFound, ValidationError
from eve.queries import Q
from eve.daemons.api.errors import ERROR_RESPONSES
from eve.daemons.api.serialize import (
    event_out, queue_out, request_out, result_out, stats_out, worker_out, worker_type_out,
)
from eve.daemons.api.sse import EncodedMessage, Subscriber, stream


# -- bodies ---------------------------------------------------------------------------------

class TokenIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    api_key: str


class TokenOut(msgspec.Struct, rename="camel"):
    token: str
    expires_at: str


class ConfigIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    variant: str | None = None
    model: str | None = None
    timeout_ms: int | None = None
    allowed_tools: list[str] | None = None


class RequestIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    worker_type: str
    prompt: str
    context: dict[str, Any] | None = None
    config: ConfigIn | None = None
    priority: int | None = None  # default 0; a child's: its parent's, and never above it
    run_after: datetime | None = None
    blocked_by: list[str] = msgspec.field(default_factory=list)
    parent_id: str | None = None
    # the parent waits for this child: its result resolves the wait and wakes a parked parent
    reply_to_parent: bool = False


class ReplayIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    prompt: str | None = None


Json = dict[str, Any]
STATUSES = ("pending", "claimed", "processing", "waiting", "completed", "failed", "cancelled")
WINDOW_UNITS = {"m": 60, "h": 3600, "d": 86400}
COUNT_CAP = 10_000  # GET /requests counts matches up to this many, then says "at least" (totalCapped)


def _like(text: str) -> str:
    """A LIKE pattern that matches `text` literally (%, _ and \\ escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _id_range(text: str | None) -> dict[str, str | None]:
    """The ids that start with `text` as a uuid range (the primary key serves it), if it can start one."""
    hexits = (text or "").lower().replace("-", "")
    if not hexits or len(hexits) > 32 or any(ch not in "0123456789abcdef" for ch in hexits):
        return {"id_lo": None, "id_hi": None}
    return {"id_lo": str(UUID(hexits.ljust(32, "0"))), "id_hi": str(UUID(hexits.ljust(32, "f")))}


def _statuses(status: str | None) -> list[str] | None:
    if not status:
        return None
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        raise ValidationError(f"unknown status {bad[0]!r}; use one or more of {', '.join(STATUSES)}, comma-separated")
    return wanted


def _window_s(window: str) -> int:
    try:
        seconds = int(float(window[:-1]) * WINDOW_UNITS[window[-1]])
    except (KeyError, ValueError, IndexError):
        raise ValidationError(f"window {window!r}: use minutes, hours or days, like 15m, 1h, 7d") from None
    if not 60 <= seconds <= 31 * 86400:
        raise ValidationError("window must be between 1m and 31d")
    return seconds


def _cursor(row: dict[str, Any]) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, rid = raw.partition("|")
        return datetime.fromisoformat(at), UUID(rid)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("cursor is not one this API issued; pass nextCursor from a previous page") from None


async def _org_id(conn: Any, slug: str | None) -> UUID | None:
    if not slug:
        return None
    cur = await conn.execute(Q.api_org_by_slug, {"slug": slug})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"organization {slug!r} not found")
    return row["id"]


# -- auth -------------------------------------------------------------------------------------

@post("/auth/token", status_code=200, tags=["auth"], responses=ERROR_RESPONSES, security=[],
      summary="Exchange an API key for a JWT")
async def token(data: TokenIn, state: State) -> TokenOut:
    async with as_api(state.pool) as conn:  # the key lookup runs through its definer functions
        if reqtokens.is_request_token(data.api_key):
            # an agent's request token is its own bearer (checked on every call, so it dies with
            # the attempt); exchanging it only checks it and hands it back
            await reqtokens.authenticate(conn, data.api_key)
            expires = datetime.now(timezone.utc) + timedelta(seconds=state.settings.token_ttl_s)
            return TokenOut(token=data.api_key, expires_at=expires.isoformat().replace("+00:00", "Z"))
        tok, expires = await auth.exchange_api_key(conn, data.api_key, state.settings.jwt_secret,
                                                   state.settings.token_ttl_s)
    return TokenOut(token=tok, expires_at=expires.isoformat().replace("+00:00", "Z"))


# -- requests ---------------------------------------------------------------------------------

@post("/requests", status_code=201, tags=["requests"], responses=ERROR_RESPONSES, summary="Submit a request",
      opt={"agent": True})
async def create_request(
    data: RequestIn, caller: Caller, state: State,
    idempotency_key: Annotated[str | None, Parameter(
        header="Idempotency-Key", required=False,
        description="Make retries safe: the same key (per org, kept 24 h) with the same body returns the "
                    "first response (header Idempotent-Replayed: true) and creates nothing; with another "
                    "body it is a 422")] = None,
) -> Response[Json]:
    config = None
    if data.config is not None:
        c = data.config
        config = {k: v for k, v in {"variant": c.variant, "model": c.model, "timeout_ms": c.timeout_ms,
                                    "allowed_tools": c.allowed_tools}.items() if v is not None}
    parent_id = data.parent_id
    if caller.request_id is not None:  # an agent: its children only, under its own request
        if parent_id is not None and parent_id != str(caller.request_id):
            raise Forbidden(f"a request token creates children of its own request ({caller.request_id}) only")
        parent_id = str(caller.request_id)
    if data.reply_to_parent and parent_id is None:
        raise ValidationError("replyToParent needs a parent: set parentId (agents: `eve request create --child`)")
    wt = state.worker_types.peek(data.worker_type)
    if (parent_id is None and not data.blocked_by and wt is not None and idempotency_key is None
            and limits.CACHE.known_unlimited(caller.org_id)):
        # nothing to read first (type and limits cached, no parent, no blockers): identity
        # and INSERT ... RETURNING in one implicit transaction, one round trip
        params = queue.insert_params(wt, org_id=caller.org_id, user_id=caller.user_id, prompt=data.prompt,
                                     context=data.context, config=config, priority=data.priority or 0,
                                     run_after=data.run_after, settings=state.settings.queue)
        [row] = await one_statement_as_user(state.pool, caller.user_id, Q.request_insert, params)
        return Response(request_out(dict(row)), status_code=201)
    # otherwise BEGIN + identity, the reads, INSERT ... RETURNING, COMMIT (three round trips
    # when worker types and limits are cached)
    key = idempotency.validate_key(idempotency_key) if idempotency_key is not None else None
    async with as_user(state.pool, caller.user_id) as conn:
        if key is not None:  # before anything else: a concurrent duplicate waits here, then replays
            replay = await idempotency.claim(conn, org_id=caller.org_id, key=key, route="POST /requests",
                                             digest=idempotency.body_hash(msgspec.json.encode(data)),
                                             user_id=caller.user_id, ttl_s=state.settings.idempotency_ttl_s)
            if replay is not None:
                return Response(replay.response, status_code=replay.status, headers={"Idempotent-Replayed": "true"})
        await limits.admit(conn, org_id=caller.org_id, key_id=caller.key_id)  # 429/402 (#19)
        parent, priority = None, data.priority
        if parent_id is not None:
            parent = await tree.check_new_child(conn, queue.parse_uuid(parent_id, "parent id"),
                                                org_id=caller.org_id, reply_to_parent=data.reply_to_parent,
                                                priority=priority)
            priority = parent["priority"] if priority is None else priority
        req = await queue.enqueue(conn, org_id=caller.org_id, user_id=caller.user_id, worker_type=data.worker_type,
                                  prompt=data.prompt, context=data.context, config=config, priority=priority or 0,
                                  run_after=data.run_after, blocked_by=data.blocked_by, parent_id=parent_id,
                                  reply_to={"type": "parent"} if data.reply_to_parent else None,
                                  settings=state.settings.queue, worker_types=state.worker_types)
        if data.reply_to_parent and parent is not None:
            await tree.add_child_wait(conn, parent_id=parent["id"], org_id=parent["org_id"], child_id=req.id)
        # a new request has no result to join; a shallow dict (asdict deep-copied context and config)
        out = request_out({f.name: getattr(req, f.name) for f in dataclasses.fields(req)})
        if key is not None:
            await idempotency.finish(conn, org_id=caller.org_id, key=key, status=201,
                                     response_json=msgspec.json.encode(out).decode())
    return Response(out, status_code=201)


@get("/requests", tags=["requests"], responses=ERROR_RESPONSES,
     summary="Search requests: newest first (or oldest), with a total and a cursor")
async def list_requests(
    caller: Caller, state: State,
    status: Annotated[str | None, Parameter(description="One or more statuses, comma-separated")] = None,
    worker_type: Annotated[str | None, Parameter(query="workerType")] = None,
    org: Annotated[str | None, Parameter(description="Organization slug (operators see every org)")] = None,
    q: Annotated[str | None, Parameter(description="Text in the prompt, or the start of the id",
                                       max_length=200)] = None,
    since: Annotated[datetime | None, Parameter(description="Created at or after")] = None,
    until: Annotated[datetime | None, Parameter(description="Created before")] = None,
    sort: Annotated[str, Parameter(pattern="^(newest|oldest)$")] = "newest",
    limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> Json:
    cursor_at, cursor_id = _parse_cursor(cursor) if cursor else (None, None)
    text = (q or "").strip() or None
    search = {"statuses": _statuses(status), "worker_type": worker_type, "since": since, "until": until,
              "q_like": f"%{_like(text)}%" if text else None, **_id_range(text)}
    async with as_user(state.pool, caller.user_id) as conn:
        search["org_id"] = await _org_id(conn, org)
        page_query = Q.api_requests_page_oldest if sort == "oldest" else Q.api_requests_page
        # never prepared: a prepared statement soon runs a generic plan, one plan for every
        # combination of filters (status:pending then walked the whole history instead of
        # the pending index); planning each search afresh costs a fraction of a millisecond
        cur = await conn.execute(page_query, {**search, "cursor_at": cursor_at, "cursor_id": cursor_id,
                                              "limit": limit + 1}, prepare=False)
        rows = await cur.fetchall()
        more = len(rows) > limit
        if cursor is None and not more:  # the first page holds every match: that is the count
            total = len(rows)
        else:
            count = await conn.execute(Q.api_requests_count, {**search, "cap": COUNT_CAP + 1}, prepare=False)
            total = (await count.fetchone())["total"]
    rows = rows[:limit]
    return {"items": [request_out(r, full=False) for r in rows], "nextCursor": _cursor(rows[-1]) if more else None,
            "total": min(total, COUNT_CAP), "totalCapped": total > COUNT_CAP}


@get("/requests/{request_id:str}", tags=["requests"], responses=ERROR_RESPONSES, summary="One request",
     opt={"agent": True})
async def get_request(request_id: str, caller: Caller, state: State) -> Json:
    rid = queue.parse_uuid(request_id)
    async with as_user(state.pool, caller.user_id) as conn:
        await tree.require_visible(conn, caller, rid)
        cur = await conn.execute(Q.api_request_detail, {"id": rid})
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"request {rid} not found")
    return request_out(row)


@get("/results/{request_id:str}", tags=["requests"], responses=ERROR_RESPONSES,
     summary="The result of a request (404 until it exists)", opt={"agent": True})
async def get_result(request_id: str, caller: Caller, state: State) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        await tree.require_visible(conn, caller, queue.parse_uuid(request_id))
        res = await queue.get_result(conn, request_id)
    return result_out({"request_id": res.request_id, "status": res.status, "output": res.output,
                       "summary": res.summary, "duration_ms": res.duration_ms, "tokens_used": res.tokens_used,
                       "cost_usd": res.cost_usd, "error": res.error, "error_code": res.error_code,
                       "created_at": res.created_at})


@post("/requests/{request_id:str}/cancel", status_code=202, tags=["requests"], responses=ERROR_RESPONSES,
      summary="Cancel a request (409 if it already finished)")
async def cancel_request(request_id: str, caller: Caller, state: State) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        req = await queue.request_cancel(conn, request_id)
        await tree.cancel_descendants(conn, req.id)  # its running and pending descendants too
        row = await (await conn.execute(Q.api_request_detail, {"id": req.id})).fetchone()
    return request_out(row)


@post("/requests/{request_id:str}/replay", status_code=201, tags=["requests"], responses=ERROR_RESPONSES,
      summary="Run a request again as a new request (optionally with an edited prompt)")
async def replay_request(request_id: str, caller: Caller, state: State, data: ReplayIn | None = None) -> Json:
    prompt = data.prompt if data is not None else None
    if prompt is not None and not prompt.strip():
        raise ValidationError("prompt must not be empty")
    async with as_user(state.pool, caller.user_id) as conn:
        await limits.admit(conn, org_id=caller.org_id, key_id=caller.key_id)  # 429/402 (#19)
        new = await queue.replay(conn, request_id, user_id=caller.user_id, prompt=prompt)
        row = await (await conn.execute(Q.api_request_detail, {"id": new.id})).fetchone()
    return request_out(row)


# -- events -------------------------------------------------------------------------------------

def _sse(frames: Any) -> ServerSentEvent:
    async def gen() -> Any:
        async for f in frames:
            if "raw" in f:  # a live event, encoded once for all its subscribers (sse.encoded)
                yield EncodedMessage(f["raw"])
            elif "comment" in f:
                yield ServerSentEventMessage(comment=f["comment"])
            else:
                yield ServerSentEventMessage(data=msgspec.json.encode(f["data"]).decode(), event=f.get("event"),
                                             id=f.get("id"))
    return ServerSentEvent(gen(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _last_event_id(request: Request[Any, Any, Any], after: int) -> int:
    raw = request.headers.get("last-event-id")
    if raw:
        try:
            return max(after, int(raw))
        except ValueError:
            raise ValidationError("Last-Event-ID must be an event id (a whole number)") from None
    return after


@get("/requests/{request_id:str}/events", tags=["events"], responses=ERROR_RESPONSES,
     summary="A request's events: JSON list, or SSE with Accept: text/event-stream", opt={"agent": True})
async def request_events(request: Request[Any, Any, Any], request_id: str, caller: Caller, state: State,
                         after: Annotated[int, Parameter(ge=0)] = 0) -> Response[Any]:
    rid = queue.parse_uuid(request_id)
    async with as_user(state.pool, caller.user_id) as conn:
        await tree.require_visible(conn, caller, rid)
        await queue.get_request(conn, rid)  # 404 for unknown or another org's
        if "text/event-stream" not in request.headers.get("accept", ""):
            cur = await conn.execute(Q.api_events_after, {"after": after, "request_id": rid, "worker_type": None,
                                                          "org_id": None, "limit": 5000})
            return Response([event_out(r) for r in await cur.fetchall()])

    async def fetch_after(last: int) -> list[dict[str, Any]]:
        async with as_user(state.pool, caller.user_id) as c:
            cur = await c.execute(Q.api_events_after, {"after": last, "request_id": rid, "worker_type": None,
                                                       "org_id": None, "limit": 500})
            return await cur.fetchall()

    async def finished() -> bool:
        async with as_user(state.pool, caller.user_id) as c:
            return (await queue.get_request(c, rid)).finished

    sub = Subscriber(user_id=caller.user_id, request_id=rid)
    return _sse(stream(state.hub, sub, after=_last_event_id(request, after), fetch_after=fetch_after,
                       is_finished=finished, ping_s=state.settings.sse_ping_s, to_json=event_out))


@get("/events/stream", tags=["events"], responses=ERROR_RESPONSES,
     summary="SSE firehose of every request event the caller may see")
async def firehose(request: Request[Any, Any, Any], caller: Caller, state: State,
                   worker_type: Annotated[str | None, Parameter(query="workerType")] = None,
                   org: str | None = None) -> Response[Any]:
    async with as_user(state.pool, caller.user_id) as conn:
        org_id = await _org_id(conn, org)
    await state.hub.ensure_presence()  # also brings hub.last_id up to date if nobody was listening
    start = _last_event_id(request, 0) or state.hub.last_id

    async def fetch_after(last: int) -> list[dict[str, Any]]:
        async with as_user(state.pool, caller.user_id) as c:
            cur = await c.execute(Q.api_events_after, {"after": last, "request_id": None, "worker_type": worker_type,
                                                       "org_id": org_id, "limit": 500})
            return await cur.fetchall()

    sub = Subscriber(user_id=caller.user_id, worker_type=worker_type, org_filter=org_id)
    return _sse(stream(state.hub, sub, after=start, fetch_after=fetch_after, is_finished=None,
                       ping_s=state.settings.sse_ping_s, to_json=event_out))


# -- platform -------------------------------------------------------------------------------------

@get("/queue", tags=["platform"], responses=ERROR_RESPONSES,
     summary="Queue depth per worker type (the caller's orgs; operators: all), with live workers")
async def get_queue(caller: Caller, state: State) -> list[Json]:
    async with as_user(state.pool, caller.user_id) as conn:
        depth = await queue.queue_depth(conn)
        cur = await conn.execute(Q.api_workers_per_type, {"lease_seconds": state.settings.queue.lease_seconds})
        alive = {r["worker_type"]: r["alive"] for r in await cur.fetchall()}
    return [{**queue_out(d), "workersAlive": alive.get(d.worker_type, 0)} for d in depth]


@get("/workers", tags=["platform"], responses=ERROR_RESPONSES,
     summary="Workers and what they run (another org's request id is null)")
async def get_workers(caller: Caller, state: State) -> list[Json]:
    async with as_user(state.pool, caller.user_id) as conn:
        rows = await (await conn.execute(Q.api_workers)).fetchall()
    return [worker_out(r, state.settings.queue.lease_seconds) for r in rows]


@get("/workers/{worker_id:str}/logs", tags=["platform"], responses=ERROR_RESPONSES,
     summary="A worker's log tail (operators only: lines name every org's requests)")
async def get_worker_logs(worker_id: str, caller: Caller, state: State,
                          after: Annotated[int, Parameter(ge=0)] = 0,
                          limit: Annotated[int, Parameter(ge=1, le=1000)] = 500) -> list[Json]:
    if not caller.operator:  # row-level security returns no rows to members anyway; say why
        raise Forbidden("worker logs are for operators: their lines name requests of every org")
    async with as_user(state.pool, caller.user_id) as conn:
        if await (await conn.execute(Q.api_worker_exists, {"id": worker_id})).fetchone() is None:
            raise NotFound(f"worker {worker_id!r} not found")
        rows = await (await conn.execute(Q.api_worker_logs, {"worker_id": worker_id, "after": after,
                                                             "limit": limit})).fetchall()
    return [{"id": r["id"], "at": r["at"].isoformat().replace("+00:00", "Z"), "level": r["level"],
             "message": r["message"], "data": r["data"]} for r in rows]


@post("/workers/{worker_id:str}/drain", status_code=202, tags=["platform"], responses=ERROR_RESPONSES,
      summary="Ask a worker to stop claiming, finish what it runs and exit (operators)")
async def drain_worker(worker_id: str, caller: Caller, state: State) -> Json:
    if not caller.operator:
        raise Forbidden("only operators can drain workers")
    async with as_user(state.pool, caller.user_id) as conn:
        row = await (await conn.execute(Q.api_worker_drain, {"id": worker_id})).fetchone()
    if row is None:
        raise NotFound(f"worker {worker_id!r} not found")
    return {"id": row["id"], "state": row["state"], "drainRequestedAt": row["drain_requested_at"].isoformat()
            .replace("+00:00", "Z")}


@get("/stats", tags=["platform"], responses=ERROR_RESPONSES,
     summary="What finished in a window: in all, per worker type and per org")
async def get_stats(caller: Caller, state: State, window: str = "1h",
                    worker_type: Annotated[str | None, Parameter(query="workerType")] = None,
                    org: str | None = None) -> Json:
    window_s = _window_s(window)
    async with as_user(state.pool, caller.user_id) as conn:
        org_id = await _org_id(conn, org)
        rows = await (await conn.execute(Q.api_stats, {"window_s": window_s, "worker_type": worker_type,
                                                       "org_id": org_id})).fetchall()
    totals = {"completed": 0, "failed": 0, "cancelled": 0, "p50Ms": None, "p95Ms": None, "costUsd": 0.0,
              "tokens": 0, "jobsPerMin": 0.0}
    by_type, by_org = [], []
    for r in rows:
        if r["by_type"] and r["by_org"]:
            totals = stats_out(r, window_s)
        elif not r["by_type"]:
            by_type.append({"workerType": r["worker_type"], **stats_out(r, window_s)})
        else:
            by_org.append({"org": r["org_slug"], "orgId": str(r["org_id"]), **stats_out(r, window_s)})
    return {"window": window, "windowSeconds": window_s, "totals": totals, "byType": by_type, "byOrg": by_org}


@get("/worker-types", tags=["platform"], responses=ERROR_RESPONSES, summary="Worker types")
async def get_worker_types(caller: Caller, state: State) -> list[Json]:
    async with as_user(state.pool, caller.user_id) as conn:
        return [worker_type_out(wt) for wt in await queue.list_worker_types(conn)]


@get("/status", tags=["platform"], responses=ERROR_RESPONSES, summary="What `eve status` prints")
async def get_status(caller: Caller, state: State) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        depth = await queue.queue_depth(conn)  # the caller's orgs only, like GET /queue
        cur = await conn.execute(Q.api_workers_per_type, {"lease_seconds": state.settings.queue.lease_seconds})
        per_type = await cur.fetchall()
    return {"api": "ok", "database": "ok", "version": __version__,
            "workers": [{"workerType": r["worker_type"], "alive": r["alive"], "expected": r["expected"],
                         "unsandboxed": r["unsandboxed"], "diskLow": r["disk_low"]}
                        for r in per_type],
            "queue": [queue_out(d) for d in depth]}


@get("/health", tags=["ops"], summary="Liveness; ?ready=1 also checks the database", security=[],
     responses={503: ERROR_RESPONSES[503]})
async def health(state: State, ready: bool = False) -> Response[Json]:
    if not ready:
        return Response({"status": "ok"})
    try:
        async with as_api(state.pool) as conn:
            await conn.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means not ready
        return Response({"status": "unavailable", "database": "down"}, status_code=503)
    return Response({"status": "ok", "database": "ok"})


_depth_cache: dict[str, float] = {"at": 0.0}


@get("/metrics", tags=["ops"], summary="Prometheus metrics; org ids and cost only with the metrics token",
     security=[], responses={401: ERROR_RESPONSES[401], 503: ERROR_RESPONSES[503]})
async def get_metrics(state: State, authorization: Annotated[str | None, Parameter(header="authorization")] = None
                      ) -> Response[bytes]:
    """No login, for scrapers: without `Authorization` the public view (no org label, no cost);
    with `Bearer $EVE_METRICS_TOKEN` everything; any other credential 401 (eve/metrics.py)."""
    full = metrics.full_access(authorization, state.settings.metrics_token)
    if time.monotonic() - _depth_cache["at"] > 1.0:
        try:
            async with as_api(state.pool) as conn:
                for d in await queue.queue_depth(conn, platform_wide=True):
                    metrics.QUEUE_DEPTH.labels(d.worker_type).set(d.pending)
            _depth_cache["at"] = time.monotonic()
        except Exception:  # noqa: BLE001 - serve the last known values when the DB is away
            pass
    return Response(metrics.exposition(full), media_type=CONTENT_TYPE_LATEST)


HANDLERS = [token, create_request, list_requests, get_request, get_result, cancel_request, replay_request,
            request_events, firehose, get_queue, get_workers, get_worker_logs, get_worker_types, get_status,
            health, get_metrics, drain_worker, get_stats]
