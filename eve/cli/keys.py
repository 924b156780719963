"""`eve keys ...`: your org's API keys over the API (owners and admins; operators with --org)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from eve.cli._client import JsonOpt, with_client
from eve.cli._orgapi import OrgOpt, call, seg
from eve.cli.output import age, console, print_json, table

app = typer.Typer(help="API keys of your organization: list, create (the key is shown once), revoke. "
                       "Needs the owner or admin role (or an operator).", no_args_is_help=True)


@app.command("list")
def keys_list(ctx: typer.Context, org: OrgOpt = None, as_json: bool = JsonOpt) -> None:
    """List the org's keys: prefix, name, owner, created, last used, revoked (never the secret)."""
    rows = with_client(ctx, lambda c: call(c, "GET", "/api-keys", org=org))
    if as_json:
        print_json(rows)
        return
    t = table("PREFIX", "NAME", "USER", "CREATED", "LAST USED", "REVOKED")
    for k in rows:
        t.add_row(k["prefix"], escape(k["name"] or ""), escape(k.get("userEmail") or "-"), age(k["createdAt"]),
                  age(k.get("lastUsedAt")), age(k.get("revokedAt")) if k.get("revokedAt") else "")
    console().print(t)


@app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", "-n", help="A label, e.g. ci or laptop.")] = "",
    user: Annotated[str | None, typer.Option("--user", help="A member's email (default: yourself).")] = None,
    org: OrgOpt = None,
    as_json: bool = JsonOpt,
) -> None:
    """Create a key. The key is printed once: store it now, it cannot be shown again."""
    row = with_client(ctx, lambda c: call(c, "POST", "/api-keys", org=org, json={"name": name, "user": user}))
    if as_json:
        print_json(row)
        return
    typer.echo(row["token"])
    console(stderr=True).print(f"[yellow]key {row['prefix']} created; the line above is the only time it is shown[/]")


@app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="The key's prefix (the 8 characters after eve_), or the whole key.")],
    org: OrgOpt = None,
) -> None:
    """Revoke a key: tokens can no longer be minted with it."""
    row = with_client(ctx, lambda c: call(c, "DELETE", f"/api-keys/{seg(prefix)}", org=org))
    typer.echo(f"revoked {row['prefix']}")
