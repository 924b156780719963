"""Routes for per-org secrets (#19): write-only values, listed by name and date.

The value travels in the PUT body only; nothing here logs or echoes it (the access log
never records bodies, and every error message names the secret, not its value).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, put
from litestar.datastructures import State

from eve import orgsecrets
from eve.auth import Caller
from eve.daemons.api.errors import ERROR_RESPONSES
from eve.daemons.api.orgs import OrgParam, _org, out
from eve.db import as_user
from eve.errors import ValidationError

Json = dict[str, Any]


def _keyring(state: State) -> orgsecrets.Keyring | None:
    if "secrets_keyring" not in state:
        state.secrets_keyring = orgsecrets.Keyring.from_env()
    return state.secrets_keyring


@get("/secrets", tags=["secrets"], responses=ERROR_RESPONSES, summary="The org's secrets: names and dates only")
async def secrets_list(caller: Caller, state: State, org: OrgParam = None) -> list[Json]:
    async with as_user(state.pool, caller.user_id) as conn:
        return [out(r) for r in await orgsecrets.list_names(conn, await _org(conn, caller, org))]


@put("/secrets/{name:str}", tags=["secrets"], responses=ERROR_RESPONSES,
     summary='Set a secret for the org\'s agents: body {"value": "..."}; it can never be read back')
async def secret_put(name: str, request: Request[Any, Any, Any], caller: Caller, state: State,
                     org: OrgParam = None) -> Json:
    try:  # parsed here, not by the framework, so no validation message can quote the value
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        raise ValidationError('the body must be JSON: {"value": "..."}') from None
    if not isinstance(body, dict) or set(body) != {"value"}:
        raise ValidationError('the body must be {"value": "..."} and nothing else')
    keyring = _keyring(state)
    async with as_user(state.pool, caller.user_id) as conn:
        return out(await orgsecrets.put(conn, keyring, await _org(conn, caller, org), name, body["value"]))


@delete("/secrets/{name:str}", status_code=200, tags=["secrets"], responses=ERROR_RESPONSES,
        summary="Delete a secret")
async def secret_delete(name: str, caller: Caller, state: State, org: OrgParam = None) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        await orgsecrets.delete(conn, await _org(conn, caller, org), name)
    return {"name": name, "deleted": True}


HANDLERS = [secrets_list, secret_put, secret_delete]
