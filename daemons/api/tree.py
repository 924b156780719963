"""Request trees over HTTP: children, the whole tree, and `eve wait` (POST /requests/{id}/wait).

Agents call these with their request token (EVE_API_TOKEN); eve.tree keeps them inside
their own request's tree. People call them with their usual token.
"""

from __future__ import annotations

from typing import Any

from litestar import get, post
from litestar.datastructures import State

from eve import queue, tree
from eve.auth import Caller
from eve.db import as_user
from eve.errors import NotFound
from eve.daemons.api.errors import ERROR_RESPONSES
from eve.daemons.api.serialize import ts

Json = dict[str, Any]


def node_out(row: dict[str, Any]) -> Json:
    """A request in a tree listing: enough to follow it (status, result summary), not the whole row."""
    return {"id": str(row["id"]), "parentId": str(row["parent_id"]) if row["parent_id"] else None,
            "depth": row["depth"], "status": row["status"], "workerType": row["worker_type"],
            "prompt": row["prompt"][:200], "createdAt": ts(row["created_at"]),
            "replyToParent": (row.get("reply_to") or {}).get("type") == "parent",
            "result": ({"status": row["result_status"], "summary": row["result_summary"],
                        "error": row["result_error"]} if row["result_status"] else None)}


async def _visible(conn: Any, caller: Caller, request_id: str) -> Any:
    rid = queue.parse_uuid(request_id)
    await tree.require_visible(conn, caller, rid)
    await queue.get_request(conn, rid)  # 404 for unknown or another org's
    return rid


@get("/requests/{request_id:str}/children", tags=["requests"], responses=ERROR_RESPONSES, opt={"agent": True},
     summary="A request's direct children, with their status and result summary")
async def get_children(request_id: str, caller: Caller, state: State) -> list[Json]:
    async with as_user(state.pool, caller.user_id) as conn:
        rid = await _visible(conn, caller, request_id)
        return [node_out(r) for r in await tree.children(conn, rid)]


@get("/requests/{request_id:str}/tree", tags=["requests"], responses=ERROR_RESPONSES, opt={"agent": True},
     summary="A request and everything below it (depth first by level), with its ancestors' ids")
async def get_tree(request_id: str, caller: Caller, state: State) -> Json:
    async with as_user(state.pool, caller.user_id) as conn:
        rid = await _visible(conn, caller, request_id)
        chain = await tree.ancestors(conn, rid)
        if caller.request_id is not None:  # an agent sees nothing above its own request
            mine = next(i for i, r in enumerate(chain) if r["id"] == caller.request_id)
            chain = chain[: mine + 1]
        rows = await tree.descendants(conn, rid)
    if not chain:
        raise NotFound(f"request {rid} not found")
    return {"id": str(rid), "ancestors": [str(r["id"]) for r in chain[1:]],
            "descendants": [node_out(r) for r in rows]}


@post("/requests/{request_id:str}/wait", status_code=202, tags=["requests"], responses=ERROR_RESPONSES,
      opt={"agent": True},
      summary="A running request asks to wait for its reply-to children (its agent then ends its turn)")
async def wait_request(request_id: str, caller: Caller, state: State) -> Json:
    rid = queue.parse_uuid(request_id)
    tree.require_self(caller, rid, "put to waiting")
    async with as_user(state.pool, caller.user_id) as conn:
        await queue.get_request(conn, rid)  # 404 for unknown or another org's
        return await tree.request_wait(conn, rid)


HANDLERS = [get_children, get_tree, wait_request]
