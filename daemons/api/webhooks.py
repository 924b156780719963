"""Routes for an org's webhook endpoints (#33): owners and admins, under row-level security.

The signing secret appears once, in the answer to POST /webhooks; nothing reads it back.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import delete, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from eve.auth import Caller
from eve.daemons.api.errors import ERROR_RESPONSES
from eve.daemons.api.orgs import OrgParam, _org, out
from eve.daemons.api.secrets import _keyring
from eve.db import as_user
from eve.errors import Forbidden
from eve.webhooks import endpoints

Json = dict[str, Any]


class EndpointIn(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    events: list[str]
    description: str = ""


def _people(caller: Caller) -> None:
    if caller.request_id is not None:
        raise Forbidden("agents cannot manage webhooks; an org owner or admin does")


@post("/webhooks", status_code=201, tags=["webhooks"], responses=ERROR_RESPONSES,
      summary="Add an endpoint that hears of the org's requests (events: request.completed, request.failed, "
              "request.cancelled); the answer holds its signing secret, shown this once")
async def webhook_add(data: EndpointIn, caller: Caller, state: State, org: OrgParam = None) -> Json:
    _people(caller)
    async with as_user(state.pool, caller.user_id) as conn:
        return out(await endpoints.create(conn, _keyring(state), await _org(conn, caller, org), url=data.url,
                                          events=data.events, description=data.description))


@get("/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES, summary="The org's webhook endpoints")
async def webhook_list(caller: Caller, state: State, org: OrgParam = None) -> list[Json]:
    _people(caller)
    async with as_user(state.pool, caller.user_id) as conn:
        return [out(r) for r in await endpoints.list_for(conn, await _org(conn, caller, org))]


@delete("/webhooks/{endpoint_id:str}", status_code=200, tags=["webhooks"], responses=ERROR_RESPONSES,
        summary="Remove an endpoint (its pending deliveries go with it)")
async def webhook_remove(endpoint_id: str, caller: Caller, state: State, org: OrgParam = None) -> Json:
    _people(caller)
    async with as_user(state.pool, caller.user_id) as conn:
        await endpoints.delete(conn, await _org(conn, caller, org), endpoint_id)
    return {"id": endpoint_id, "deleted": True}


@get("/webhooks/{endpoint_id:str}/deliveries", tags=["webhooks"], responses=ERROR_RESPONSES,
     summary="An endpoint's delivery log, newest first: tries, the receiver's status, the last error")
async def webhook_deliveries(endpoint_id: str, caller: Caller, state: State, org: OrgParam = None,
                             limit: Annotated[int, Parameter(ge=1, le=500)] = 50) -> list[Json]:
    _people(caller)
    async with as_user(state.pool, caller.user_id) as conn:
        return [out(r) for r in await endpoints.deliveries(conn, await _org(conn, caller, org), endpoint_id, limit)]


@post("/webhooks/{endpoint_id:str}/test", status_code=202, tags=["webhooks"], responses=ERROR_RESPONSES,
      summary="Send the endpoint a webhook.test message through the outbox, like any other")
async def webhook_test(endpoint_id: str, caller: Caller, state: State, org: OrgParam = None) -> Json:
    _people(caller)
    async with as_user(state.pool, caller.user_id) as conn:
        return out(await endpoints.ping(conn, await _org(conn, caller, org), endpoint_id))


HANDLERS = [webhook_add, webhook_list, webhook_remove, webhook_deliveries, webhook_test]
