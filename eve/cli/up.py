"""`eve up`: the platform on one machine, on the embedded PostgreSQL by default."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from eve.cli._common import console, run

DEFAULT_DATA_DIR = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "eve"


def up(
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="EVE_DATA_DIR",
                                           help="Where the embedded PostgreSQL keeps its data.")] = DEFAULT_DATA_DIR,
    pg_port: Annotated[int, typer.Option("--pg-port", help="Port of the embedded PostgreSQL on 127.0.0.1.")] = 54320,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="DATABASE_URL",
        help="Use this PostgreSQL instead of the embedded one.", show_envvar=False)] = None,
) -> None:
    """Start the platform: PostgreSQL (embedded unless DATABASE_URL is set), migrated and bootstrapped.

    Prints the DSN and, on first run, an operator API key. Ctrl+C stops everything it started.
    """
    from eve import admin, migrate
    from eve.db import connect, describe
    from eve.pg import EmbeddedPostgres

    pg: EmbeddedPostgres | None = None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if database_url:
            dsn = database_url
            console.print(f"[bold]database[/bold]  {describe(dsn)} (from DATABASE_URL)")
        else:
            pg = EmbeddedPostgres(data_dir, port=pg_port)
            with console.status("starting embedded PostgreSQL..."):
                dsn = pg.start()
            console.print(f"[bold]database[/bold]  embedded PostgreSQL in {pg.data_dir} (pid {pg.running_pid()})")
        applied = run(migrate.migrate(dsn))
        console.print(f"[bold]schema[/bold]    {len(applied)} migration(s) applied" if applied
                      else "[bold]schema[/bold]    up to date")

        async def boot() -> admin.CreatedKey | None:
            conn = await connect(dsn)
            try:
                return await admin.bootstrap(conn)
            finally:
                await conn.close()

        key = run(boot())
        console.print(f"[bold]DSN[/bold]       {dsn}")
        console.print(f"           export DATABASE_URL='{dsn}'")
        if key:
            console.print(f"[bold]API key[/bold]   {key.token}")
            console.print("           (operator key for org 'default'; shown once, store it now)")
        else:
            console.print("[bold]API key[/bold]   already bootstrapped; make another with: "
                          "eve admin apikey create --org default --user admin@localhost")
        console.print("[green]ready[/green] — Ctrl+C to stop")
        while not stop.wait(0.5):
            if pg is not None and pg.running_pid() is None:
                console.print("[red]embedded PostgreSQL exited; see[/red] " + str(pg.log_file))
                raise typer.Exit(1)
    finally:
        if pg is not None:
            console.print("stopping PostgreSQL...")
            pg.stop()
            console.print("stopped")
