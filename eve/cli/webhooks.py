"""`eve webhooks ...`: endpoints that hear when your org's requests finish (owners and admins).

Deliveries are signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), retried for about a day, and logged per endpoint; see docs/api.md.
"""

from __future__ import annotations

from typing import Annotated

import typer

from eve.cli._client import JsonOpt, with_client
from eve.cli._orgapi import OrgOpt, call, seg
from eve.cli.output import age, console, print_json, table
from eve.webhooks import EVENTS

app = typer.Typer(help="Webhook endpoints for your organization's requests: add, list, remove, test, "
                       "deliveries.", no_args_is_help=True)


@app.command("add")
def webhooks_add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="https://... (a public address: private ones are refused).")],
    events: Annotated[str, typer.Option("--events", help=f"Comma-separated: {', '.join(EVENTS)}.")]
    = "request.completed,request.failed",
    description: Annotated[str, typer.Option(help="What it is for (shown in the list).")] = "",
    org: OrgOpt = None,
    as_json: bool = JsonOpt,
) -> None:
    """Add an endpoint; prints its signing secret once (keep it: it is never shown again)."""
    row = with_client(ctx, lambda c: call(c, "POST", "/webhooks", org=org, json={
        "url": url, "events": [e.strip() for e in events.split(",") if e.strip()], "description": description}))
    if as_json:
        print_json(row)
        return
    out = console()
    out.print(f"webhook {row['id']} → {row['url']} ({', '.join(row['events'])})")
    out.print(f"signing secret (shown once): {row['secret']}")


@app.command("list")
def webhooks_list(ctx: typer.Context, org: OrgOpt = None, as_json: bool = JsonOpt) -> None:
    """The org's endpoints, and which are disabled and why."""
    rows = with_client(ctx, lambda c: call(c, "GET", "/webhooks", org=org))
    if as_json:
        print_json(rows)
        return
    t = table("ID", "URL", "EVENTS", "STATE", "CREATED")
    for r in rows:
        state = f"disabled: {r['disabledReason']}" if r.get("disabledAt") else (
            f"failing ({r['failuresInRow']} given up)" if r.get("failuresInRow") else "active")
        t.add_row(r["id"][:8], r["url"], ",".join(r["events"]), state, age(r["createdAt"]))
    console().print(t)


@app.command("remove")
def webhooks_remove(ctx: typer.Context, endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id.")],
                    org: OrgOpt = None) -> None:
    """Remove an endpoint; its pending deliveries go with it."""
    with_client(ctx, lambda c: call(c, "DELETE", f"/webhooks/{seg(endpoint_id)}", org=org))
    typer.echo(f"webhook {endpoint_id} removed")


@app.command("test")
def webhooks_test(ctx: typer.Context, endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id.")],
                  org: OrgOpt = None, as_json: bool = JsonOpt) -> None:
    """Send a webhook.test message through the outbox; `eve webhooks deliveries ID` shows how it went."""
    row = with_client(ctx, lambda c: call(c, "POST", f"/webhooks/{seg(endpoint_id)}/test", org=org))
    if as_json:
        print_json(row)
        return
    typer.echo(f"queued {row['messageId']}; see: eve webhooks deliveries {endpoint_id}")


@app.command("deliveries")
def webhooks_deliveries(
    ctx: typer.Context, endpoint_id: Annotated[str, typer.Argument(help="The endpoint's id.")],
    limit: Annotated[int, typer.Option(help="At most this many (1-500).", min=1, max=500)] = 20,
    org: OrgOpt = None, as_json: bool = JsonOpt,
) -> None:
    """An endpoint's delivery log, newest first: tries, the receiver's answer, the last error."""
    rows = with_client(ctx, lambda c: call(c, "GET", f"/webhooks/{seg(endpoint_id)}/deliveries", org=org,
                                           params={"limit": limit}))
    if as_json:
        print_json(rows)
        return
    t = table("MESSAGE", "EVENT", "STATE", "TRIES", "STATUS", "LAST ERROR", "CREATED")
    for r in rows:
        state = "delivered" if r.get("deliveredAt") else "given up" if r.get("givenUpAt") else "retrying"
        t.add_row(r["messageId"], r["event"], state, str(r["attempts"]), str(r.get("lastStatus") or "-"),
                  (r.get("lastError") or "")[:60], age(r["createdAt"]))
    console().print(t)
