"""The Litestar application: pool and SSE hub in the lifespan, auth as a dependency."""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from eve import __version__, reqtokens
from eve.auth import Caller, bearer
from eve.daemons.api import errors, hitl, orgs, routes, schedules, slack, tree
from eve.daemons.api import secrets as secrets_routes
from eve.daemons.api import webhooks as webhook_routes
from eve.daemons.api.settings import MAX_BODY_BYTES, ApiSettings
from eve.daemons.api.sse import Hub
from eve.daemons.api.tokens import verify_cached
from eve.db import as_api, make_pool
from eve.errors import Forbidden
from eve.worker_types import WorkerTypeCache

access_log = logging.getLogger("eve.api.access")


async def provide_caller(request: Request[Any, Any, Any], state: State) -> Caller:
    token = bearer(request.headers.get("authorization"))
    if reqtokens.is_request_token(token):
        # an agent's EVE_API_TOKEN: checked in the database on every call (it dies with its
        # attempt), and good only for the routes that let agents in (opt "agent")
        async with as_api(state.pool) as conn:
            caller = await reqtokens.authenticate(conn, token)
        if not request.route_handler.opt.get("agent"):
            raise Forbidden("a request token (EVE_API_TOKEN) may only create children of its request, read its "
                            "own request tree (requests, events, results, children) and wait; this route is not "
                            "one of those")
    else:  # a JWT: verified once, then remembered until its exp (daemons/api/tokens.py)
        caller = verify_cached(state.settings.jwt_secret, token)
    request.scope.setdefault("state", {})["org_id"] = str(caller.org_id)
    return caller


def access_log_middleware(app: ASGIApp) -> ASGIApp:
    """One JSON line per HTTP request: id, org, route, status, latency. Never headers or bodies."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        request_id = uuid.uuid4().hex[:16]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            if path != "/health":
                access_log.info("%s %s %s", scope.get("method"), path, status["code"], extra={"data": {
                    "http_request_id": request_id, "org_id": scope.get("state", {}).get("org_id"),
                    "method": scope.get("method"), "route": path, "status": status["code"],
                    "latency_ms": round((time.perf_counter() - started) * 1000, 2)}})

    return middleware


def create_app(settings: ApiSettings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = make_pool(settings.database_url, min_size=1, max_size=settings.pool_size, name="eve-api")
        await pool.open(wait=False)  # the API starts (and answers 503) even while PostgreSQL is down
        worker_types = WorkerTypeCache()
        hub = Hub(settings.database_url, pool, queue_size=settings.sse_queue_size,
                  on_worker_types_changed=worker_types.invalidate)
        app.state.pool = pool
        app.state.worker_types = worker_types
        app.state.hub = hub
        await hub.start()
        # The collector, tuned for a server (measured under wrk, POST /requests, one process:
        # 890 -> 1,000-1,090 req/s, p99 120 -> 45-60 ms, API CPU 0.80 -> 0.63 ms per POST):
        # everything loaded so far (modules, routes, schemas) lives as long as the process,
        # so gc.freeze() takes it out of every full collection; and a young generation of
        # 10,000 objects instead of 700 collects a few times a second, not every request.
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 20, 20)
        # No scheduler loop here: the API's database role is eve_api only (least privilege),
        # and firing a schedule writes as the service role. Every worker runs the loop.
        try:
            yield
        finally:
            await hub.stop()
            await pool.close()

    return Litestar(
        route_handlers=[*routes.HANDLERS, *schedules.HANDLERS, *tree.HANDLERS, *hitl.HANDLERS,
                        *orgs.HANDLERS, *secrets_routes.HANDLERS, *slack.HANDLERS,
                        *webhook_routes.HANDLERS],
        dependencies={"caller": Provide(provide_caller)},
        exception_handlers=errors.HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        state=State({"settings": settings}),
        middleware=[access_log_middleware],
        request_max_body_size=MAX_BODY_BYTES,
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        openapi_config=OpenAPIConfig(
            title="eve-horizon API", version=__version__, path="/schema",
            description="Run AI coding agents as queued jobs. Errors are always {\"error\", \"message\"}.",
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer",
                                                                             bearer_format="JWT")}),
            security=[{"bearer": []}],
        ),
        logging_config=None,  # eve.logging emits JSON lines; Litestar must not reconfigure it
        debug=False,
    )
