"""Request trees: parent/children, an agent's scope, limits, and cancelling a subtree.

An agent authenticated with its request token (`Caller.request_id`) sees only its own
request and what lies below it; anything else answers 404 exactly like another org's
request, so a hostile agent learns nothing about what exists. Children are created
under the caller's request only, within limits per tree (depth and total requests below
the root) so a runaway agent meets a 4xx, not an unbounded fan-out.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eve.auth import Caller
from eve.errors import Conflict, Forbidden, NotFound, ValidationError
from eve.queries import Q
from eve.settings import env_int

DEFAULT_MAX_DEPTH = 5
DEFAULT_MAX_REQUESTS = 100


def max_depth() -> int:
    return env_int("EVE_TREE_MAX_DEPTH", DEFAULT_MAX_DEPTH)


def max_requests() -> int:
    return env_int("EVE_TREE_MAX_REQUESTS", DEFAULT_MAX_REQUESTS)


async def ancestors(conn: Any, request_id: UUID) -> list[dict[str, Any]]:
    """The request and its ancestors, nearest first (empty when the caller cannot see it)."""
    return list(await (await conn.execute(Q.tree_ancestors, {"id": request_id})).fetchall())


async def require_visible(conn: Any, caller: Caller, request_id: UUID) -> None:
    """404 unless a request-token caller's own request is this one or one of its ancestors."""
    if caller.request_id is None:
        return
    if request_id == caller.request_id:
        return
    if not any(r["id"] == caller.request_id for r in await ancestors(conn, request_id)):
        raise NotFound(f"request {request_id} not found")


def require_self(caller: Caller, request_id: UUID, what: str) -> None:
    if caller.request_id is not None and caller.request_id != request_id:
        raise Forbidden(f"a request token may only {what} its own request ({caller.request_id})")


async def check_new_child(conn: Any, parent_id: UUID, *, org_id: UUID, reply_to_parent: bool,
                          priority: int | None = None) -> dict[str, Any]:
    """Tree limits for a new child of `parent_id` (raise 4xx), serialized per tree; the parent row.

    A child's priority is at most its parent's: otherwise an agent (whose prompt a tenant, or
    text it was fed, controls) could jump its org's queue and every other org's within a
    priority by handing its work to a child of priority 1000."""
    chain = await ancestors(conn, parent_id)
    if not chain:
        raise ValidationError(f"parentId {parent_id} names no request you can see")
    parent = chain[0]
    if parent["org_id"] != org_id:  # a tree stays in one org (its waits, limits and cancels do)
        raise ValidationError(f"parentId {parent_id} belongs to another organization than this request")
    if priority is not None and priority > parent["priority"]:
        raise ValidationError(f"priority {priority} is above its parent's ({parent['priority']}, request "
                              f"{parent_id}): a child's priority is at most its parent's; leave it out to "
                              "inherit the parent's")
    if reply_to_parent and parent["status"] in ("completed", "failed", "cancelled"):
        raise Conflict(f"request {parent_id} already finished ({parent['status']}); nothing would read "
                       "a reply-to child's result")
    root = chain[-1]["id"]
    depth = len(chain)  # the new child's depth below the root (the chain is the parent and its ancestors)
    if depth > max_depth():
        raise ValidationError(
            f"request tree too deep: a child of {parent_id} would be {depth} levels below its root "
            f"{root}; at most {max_depth()} are allowed (EVE_TREE_MAX_DEPTH)")
    await conn.execute(Q.tree_lock, {"root": root})
    below = (await (await conn.execute(Q.tree_count_below, {"root": root})).fetchone())["n"]
    if below >= max_requests():
        raise Conflict(
            f"request tree full: {root} already has {below} requests below it, the most allowed "
            f"(EVE_TREE_MAX_REQUESTS={max_requests()}); wait for results instead of adding more")
    return parent


async def add_child_wait(conn: Any, *, parent_id: UUID, org_id: UUID, child_id: UUID) -> None:
    """The parent will wait for this child (reply-to parent): its result resolves the wait."""
    await conn.execute(Q.wait_insert_child, {"request_id": parent_id, "org_id": org_id, "ref_id": child_id})


async def request_wait(conn: Any, request_id: UUID) -> dict[str, Any]:
    """Mark a running request as wanting to wait; the worker parks it when its agent exits."""
    row = await (await conn.execute(Q.request_wait_requested, {"id": request_id})).fetchone()
    if row is None:
        raise Conflict(f"request {request_id} is not running, so it cannot wait")
    if not row["waits"]:
        raise Conflict(f"request {request_id} has nothing to wait for: create children with "
                       "`eve request create --child --reply-to-parent` first")
    return {"requestId": str(row["id"]), "waitingFor": [str(i) for i in row["open_children"]]}


async def children(conn: Any, request_id: UUID) -> list[dict[str, Any]]:
    return list(await (await conn.execute(Q.tree_children, {"id": request_id})).fetchall())


async def descendants(conn: Any, root: UUID) -> list[dict[str, Any]]:
    return list(await (await conn.execute(Q.tree_descendants, {"root": root})).fetchall())


async def cancel_descendants(conn: Any, request_id: UUID) -> list[UUID]:
    """Cancel everything below a cancelled request that has not finished yet."""
    rows = await (await conn.execute(Q.tree_cancel_descendants, {"id": request_id})).fetchall()
    return [r["id"] for r in rows]
