"""`eve members ...`: your org's members and roles over the API (owners and admins)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from eve.cli._client import JsonOpt, with_client
from eve.cli._orgapi import OrgOpt, call, seg
from eve.cli.output import age, console, print_json, table

app = typer.Typer(help="Members of your organization: list, add, set-role, remove. Roles: owner, admin "
                       "(manage keys, members, secrets), member (use the queue). Needs owner or admin.",
                  no_args_is_help=True)
RoleOpt = Annotated[str, typer.Option("--role", "-r", help="owner, admin or member.")]


@app.command("list")
def members_list(ctx: typer.Context, org: OrgOpt = None, as_json: bool = JsonOpt) -> None:
    """List members and their roles."""
    rows = with_client(ctx, lambda c: call(c, "GET", "/members", org=org))
    if as_json:
        print_json(rows)
        return
    t = table("EMAIL", "NAME", "ROLE", "SINCE")
    for m in rows:
        t.add_row(escape(m["email"]), escape(m.get("displayName") or ""), m["role"], age(m["createdAt"]))
    console().print(t)


@app.command("add")
def members_add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The person's email (a user is created if new).")],
    role: RoleOpt = "member",
    name: Annotated[str | None, typer.Option("--name", help="Display name for a new user.")] = None,
    org: OrgOpt = None,
) -> None:
    """Add a member. Give them a key with `eve keys create --user EMAIL`."""
    row = with_client(ctx, lambda c: call(c, "POST", "/members", org=org,
                                          json={"email": email, "role": role, "displayName": name}))
    typer.echo(f"added {row['email']} as {row['role']}")


@app.command("set-role")
def members_set_role(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The member's email.")],
    role: Annotated[str, typer.Argument(help="owner, admin or member.")],
    org: OrgOpt = None,
) -> None:
    """Change a member's role (only owners grant or take away owner)."""
    row = with_client(ctx, lambda c: call(c, "PATCH", f"/members/{seg(email)}", org=org, json={"role": role}))
    typer.echo(f"{row['email']} is now {row['role']}")


@app.command("remove")
def members_remove(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The member's email.")],
    org: OrgOpt = None,
) -> None:
    """Remove a member; their API keys for this org are revoked with it."""
    row = with_client(ctx, lambda c: call(c, "DELETE", f"/members/{seg(email)}", org=org))
    revoked = row.get("keysRevoked") or []
    typer.echo(f"removed {row['email']}" + (f" (revoked keys: {', '.join(revoked)})" if revoked else ""))
