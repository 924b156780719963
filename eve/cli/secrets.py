"""`eve secrets ...`: your org's secrets for its agents, over the API (owners and admins).

Values are write-only: `eve secrets set NAME` reads the value from stdin (so it never sits
in shell history or `ps`), and nothing can show it again.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from eve.cli._client import JsonOpt, with_client
from eve.cli._common import die
from eve.cli._orgapi import OrgOpt, call, seg
from eve.cli.output import age, console, print_json, table

app = typer.Typer(help="Secrets for your organization's agents (environment variables, encrypted at rest, "
                       "masked in their output): list, set (value from stdin), delete.", no_args_is_help=True)


@app.command("list")
def secrets_list(ctx: typer.Context, org: OrgOpt = None, as_json: bool = JsonOpt) -> None:
    """Names and dates only; values are never shown."""
    rows = with_client(ctx, lambda c: call(c, "GET", "/secrets", org=org))
    if as_json:
        print_json(rows)
        return
    t = table("NAME", "UPDATED", "BY", "CREATED")
    for s in rows:
        t.add_row(s["name"], age(s["updatedAt"]), s.get("updatedBy") or "-", age(s["createdAt"]))
    console().print(t)


def _read_value() -> str:
    if sys.stdin is None or sys.stdin.isatty():
        import getpass

        return getpass.getpass("value (not echoed): ")
    value = sys.stdin.read()
    return value[:-1] if value.endswith("\n") else value  # `echo x | eve secrets set` adds one newline


@app.command("set")
def secrets_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Environment variable name for the agents, e.g. GH_TOKEN.")],
    org: OrgOpt = None,
) -> None:
    """Set (or replace) a secret; the value is read from stdin, e.g. `eve secrets set GH_TOKEN < token.txt`."""
    value = _read_value()
    if not value:
        die("no value on stdin; pipe it in, e.g. `eve secrets set NAME < file`", 2)
    with_client(ctx, lambda c: call(c, "PUT", f"/secrets/{seg(name)}", org=org, json={"value": value}))
    typer.echo(f"secret {name} set")


@app.command("delete")
def secrets_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The secret's name.")],
    org: OrgOpt = None,
) -> None:
    """Delete a secret; agents started from now on no longer get it."""
    with_client(ctx, lambda c: call(c, "DELETE", f"/secrets/{seg(name)}", org=org))
    typer.echo(f"secret {name} deleted")
