"""`eve db ...`: migrations and housekeeping on the database directly."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from eve.cli._common import DSN_HELP, console, require_dsn, run

app = typer.Typer(help="Database schema and housekeeping (talks to PostgreSQL directly).", no_args_is_help=True)

DsnOpt = Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL", help=DSN_HELP, show_envvar=False)]


@app.command()
def migrate(database_url: DsnOpt = None) -> None:
    """Apply pending migrations (idempotent; safe to run from several hosts at once)."""
    from eve import migrate as migrations

    dsn = require_dsn(database_url)
    applied = run(migrations.migrate(dsn))
    if applied:
        for mig in applied:
            console.print(f"applied {mig.version:04d}_{mig.name}")
    else:
        console.print("database is up to date")


@app.command()
def status(database_url: DsnOpt = None) -> None:
    """Show applied and pending migrations."""
    from eve import migrate as migrations

    dsn = require_dsn(database_url)
    st = run(migrations.status(dsn))
    names = {m.version: m.name for m in migrations.load_migrations()}
    for v in st.applied:
        console.print(f"[green]applied[/green] {v:04d}_{names.get(v, '?')}")
    for v in st.pending:
        console.print(f"[yellow]pending[/yellow] {v:04d}_{names[v]}")
    if not st.pending:
        console.print("up to date")


_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' → seconds."""
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise typer.BadParameter(f"{text!r} is not a duration like 30d, 12h, 90m or 45s")
    return int(m.group(1)) * _UNIT[m.group(2)]


@app.command()
def prune(
    older_than: Annotated[str, typer.Option("--older-than", help="Age cut-off, e.g. 30d, 12h.")] = "30d",
    database_url: DsnOpt = None,
) -> None:
    """Delete finished requests (and their results and events) older than the cut-off."""
    from eve.db import connect, set_service
    from eve.queue import prune as prune_requests

    seconds = parse_duration(older_than)
    dsn = require_dsn(database_url)

    async def go() -> int:
        conn = await connect(dsn)
        try:
            async with conn.transaction():
                await set_service(conn)
                return await prune_requests(conn, older_than_seconds=seconds)
        finally:
            await conn.close()

    console.print(f"pruned {run(go())} finished requests older than {older_than}")
