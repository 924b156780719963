"""`eve request children`, `eve request tree`, `eve wait`: orchestration from the command line.

Agents run these inside their sandbox with the request token their worker gave them
(EVE_API_TOKEN); the request they run is EVE_REQUEST_ID, the default ID here.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from eve.cli._client import JsonOpt, with_client
from eve.cli.output import console, first_line, print_json, styled_status, table
from eve.cli.requests import own_request_id, request_app
from eve.errors import EveError

if TYPE_CHECKING:
    from eve.client import EveClient

FINAL = {"completed", "failed", "cancelled"}
# What `eve wait` prints; skills/orchestration/SKILL.md teaches the agent to obey it.
END_TURN = ("END YOUR TURN NOW: reply with one short line saying what you are waiting for, and stop. "
            "Do not poll. You will be resumed in this same conversation with their results.")


def _node_row(n: dict[str, Any], indent: str = "") -> tuple[str, ...]:
    res = n.get("result") or {}
    text = res.get("summary") or res.get("error") or ""
    return (f"{indent}{n['id']}", styled_status(n["status"]), n["workerType"], "yes" if n.get("replyToParent") else "",
            escape(first_line(text or n["prompt"], 60)))


@request_app.command("children")
def children(
    ctx: typer.Context,
    request_id: Annotated[str | None, typer.Argument(help="Request ID (default: this agent's, $EVE_REQUEST_ID).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Block until every child has finished (agents: prefer "
                                                      "`eve wait`, which frees the worker while you wait).")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many seconds.")] = 3600,
    as_json: bool = JsonOpt,
) -> None:
    """List a request's direct children with their status and result summary."""
    rid = request_id or own_request_id()

    async def go(c: EveClient) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        delay = 0.5
        while True:
            kids = await c.children(rid)
            if not wait or all(k["status"] in FINAL for k in kids):
                return kids
            if time.monotonic() > deadline:
                raise EveError(f"children of {rid} still running after {timeout:g} s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    kids = with_client(ctx, go)
    if as_json:
        print_json(kids)
        return
    out = console()
    if not kids:
        out.print(f"request {rid} has no children")
        return
    t = table("ID", "STATUS", "TYPE", "REPLY", "RESULT / PROMPT")
    for k in kids:
        t.add_row(*_node_row(k))
    out.print(t)


@request_app.command("tree")
def tree(
    ctx: typer.Context,
    request_id: Annotated[str | None, typer.Argument(help="Request ID (default: this agent's, $EVE_REQUEST_ID).")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Show a request and everything below it, indented by level."""
    rid = request_id or own_request_id()
    data = with_client(ctx, lambda c: c.tree(rid))
    if as_json:
        print_json(data)
        return
    out = console()
    if data["ancestors"]:
        out.print(f"[bright_black]ancestors: {' ← '.join(data['ancestors'])}[/]")
    out.print(f"[bold]{data['id']}[/]")
    t = table("ID", "STATUS", "TYPE", "REPLY", "RESULT / PROMPT")
    for n in data["descendants"]:
        t.add_row(*_node_row(n, "  " * n["depth"]))
    if data["descendants"]:
        out.print(t)
    else:
        out.print("(no children)")


def wait(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Agents: wait for your reply-to children without holding a worker. Ends with an instruction to
    end your turn now; you are resumed, in the same conversation, once every child has a result."""
    rid = own_request_id()
    data = with_client(ctx, lambda c: c.wait_for_children(rid))
    if as_json:
        print_json({**data, "instruction": END_TURN})
        return
    ids = data.get("waitingFor") or []
    if ids:
        print(f"eve: request {rid} will wait for {len(ids)} child request(s): {', '.join(ids)}")
    else:
        print(f"eve: every child of request {rid} already has a result; you are resumed right away")
    print(END_TURN)
