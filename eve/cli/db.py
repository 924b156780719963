"""`eve db ...`: migrations and housekeeping on the database directly."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from eve.cli._common import DSN_HELP, console, die, require_dsn, run

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


DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="EVE_DATA_DIR", show_envvar=False,
    help="Without --database-url/DATABASE_URL: the running embedded PostgreSQL of `eve up` in this data dir.")]


def _dsn(database_url: str | None, data_dir: Path | None) -> str:
    """DATABASE_URL, or the embedded PostgreSQL `eve up` runs in the data dir (it must be running)."""
    if database_url or os.environ.get("DATABASE_URL") or data_dir is None:
        return require_dsn(database_url)
    from eve.pg import EmbeddedPostgres, postmaster_port

    pg = EmbeddedPostgres(data_dir.expanduser())
    port = postmaster_port(pg.pgdata)
    if port is None or pg.running_pid() is None or not pg.password_file.exists():
        die(f"no running embedded PostgreSQL in {pg.data_dir} (start `eve up --data-dir {data_dir}`), "
            "or pass --database-url", 2)
    pg.port = port
    return pg.dsn()


@app.command()
def backup(
    to: Annotated[Path | None, typer.Option("--to", help="The backup file (default ./eve-YYYYmmdd-HHMMSS.dump).")]
    = None,
    database_url: DsnOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Back up eve's whole schema (requests, results, events, orgs, keys, secrets as ciphertext) to one
    file, mode 0600; `eve db restore FILE` puts it back. The embedded PostgreSQL of `eve up` is found
    through --data-dir."""
    from datetime import datetime

    from eve import backup as backups

    dest = to or Path(f"eve-{datetime.now():%Y%m%d-%H%M%S}.dump")
    done = backups.backup(_dsn(database_url, data_dir), dest)
    console.print(f"backed up to {done.path} ({done.bytes:,} bytes)")


@app.command()
def restore(
    src: Annotated[Path, typer.Argument(help="A file made by `eve db backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a database that already holds requests.")] = False,
    database_url: DsnOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Restore a backup (in one transaction: on any error nothing changes), then apply migrations newer
    than it. Stop the API and the workers first."""
    from eve import backup as backups

    applied = run(backups.restore(_dsn(database_url, data_dir), src, force=force))
    console.print(f"restored {src}" + (f"; then applied {', '.join(applied)}" if applied else ""))


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


@app.command()
def roles(
    database_url: DsnOpt = None,
    api_password: Annotated[str | None, typer.Option(envvar="EVE_API_DB_PASSWORD", show_envvar=True,
                                                     help="Password for eve_api_login.")] = None,
    worker_password: Annotated[str | None, typer.Option(envvar="EVE_WORKER_DB_PASSWORD", show_envvar=True,
                                                        help="Password for eve_worker_login.")] = None,
) -> None:
    """Create or reset the API's and the workers' login roles (run with the migrator's DSN).

    eve_api_login is a member of eve_api only (row-level security applies); eve_worker_login
    of service_role only (no superuser, no CREATE). Give the API
    postgresql://eve_api_login:…@host/db and the workers postgresql://eve_worker_login:…@host/db,
    each in its own env file or Secret; only this command and `eve db migrate` need the
    owner's DSN. Idempotent: run it after every migrate (it also narrows a widened role).
    """
    from eve import roles as login_roles
    from eve.db import API_ROLE, SERVICE_ROLE, connect

    dsn = require_dsn(database_url)
    wanted = [login_roles.LoginRole(login_roles.API_LOGIN, API_ROLE, api_password or ""),
              login_roles.LoginRole(login_roles.WORKER_LOGIN, SERVICE_ROLE, worker_password or "")]
    for role, var in zip(wanted, ("EVE_API_DB_PASSWORD", "EVE_WORKER_DB_PASSWORD")):
        if len(role.password) < 16:
            die(f"{var} must be set to a password of at least 16 characters (e.g. openssl rand -hex 24)", 2)

    async def go() -> None:
        conn = await connect(dsn)
        try:
            await login_roles.ensure_login_roles(conn, wanted)
        finally:
            await conn.close()

    import psycopg

    try:
        run(go())
    except psycopg.errors.InsufficientPrivilege as exc:
        die(f"this DSN's role may not create roles ({str(exc).strip().splitlines()[0]}); use the migrator's "
            "(superuser or CREATEROLE) DSN")
    for role in wanted:
        console.print(f"role {role.name}: login, member of {role.group} only")


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
    """Delete finished requests (and their results and events) and schedule fires older than
    the cut-off; each schedule keeps its latest fire."""
    from eve.db import connect, set_service
    from eve.queue import prune as prune_requests
    from eve.schedules import prune_fires

    seconds = parse_duration(older_than)
    dsn = require_dsn(database_url)

    async def go() -> tuple[int, int]:
        conn = await connect(dsn)
        try:
            async with conn.transaction():
                await set_service(conn)
                requests = await prune_requests(conn, older_than_seconds=seconds)
                return requests, await prune_fires(conn, older_than_seconds=seconds)
        finally:
            await conn.close()

    requests, fires = run(go())
    console.print(f"pruned {requests} finished requests and {fires} schedule fires older than {older_than}")
