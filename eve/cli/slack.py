"""`eve slack run` (the Slack daemon) and `eve admin slack ...` (installations, user links)."""

from __future__ import annotations

import importlib
import os
from typing import Annotated

import typer

from eve.cli._common import DSN_HELP, die

app = typer.Typer(help="Slack: run the daemon that posts to threads (and serves Socket Mode).",
                  no_args_is_help=True)
admin_app = typer.Typer(help="Slack installations and user links (talks to PostgreSQL directly).",
                        no_args_is_help=True)

DsnOpt = Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL", help=DSN_HELP, show_envvar=False)]
JwtOpt = Annotated[str | None, typer.Option(
    "--jwt-secret", envvar="JWT_SECRET", show_envvar=False,
    help="The platform's JWT_SECRET (default: $JWT_SECRET): Slack secrets are stored encrypted under a key "
         "derived from it, so the API and `eve slack run` can read them.")]


@app.command("run")
def run(
    database_url: DsnOpt = None,
    api_database_url: Annotated[str | None, typer.Option(
        envvar="EVE_API_DATABASE_URL", show_envvar=False,
        help="eve_api DSN for Socket Mode listeners, which create requests under row-level security as "
             "the Slack user's eve user (default: $EVE_API_DATABASE_URL, else --database-url).")] = None,
    poll_interval: Annotated[float, typer.Option(envvar="EVE_SLACK_POLL_INTERVAL",
                                                 help="Seconds between looks for new events to deliver.")] = 1.0,
    progress_interval: Annotated[float, typer.Option(
        envvar="EVE_SLACK_PROGRESS_INTERVAL",
        help="Least seconds between two edits of a thread's progress message (Slack allows ~1 per second "
             "per channel).")] = 3.0,
    socket_mode: Annotated[bool, typer.Option(
        "--socket-mode/--no-socket-mode",
        help="Open a Socket Mode connection for installations connected with --app-token (for hosts with no "
             "public URL). Without it, Slack must reach the API's /slack/events.")] = True,
) -> None:
    """Deliver Slack messages (thread root, progress, results, questions) and serve Socket Mode.

    Needs DATABASE_URL (the worker's, service-role DSN) and JWT_SECRET. Run one or more
    (threads are leased, never posted twice by two daemons). In HTTP mode this daemon still
    posts everything; the API only receives.
    """
    args = ["--poll-interval", str(poll_interval), "--progress-interval", str(progress_interval)]
    if database_url:
        args += ["--database-url", database_url]
    if api_database_url:
        args += ["--api-database-url", api_database_url]
    if not socket_mode:
        args.append("--no-socket-mode")
    importlib.import_module("eve.daemons.slack.main").cli(args)


def _key(jwt_secret: str | None) -> bytes:
    from eve.slack import secretbox

    return secretbox.key_from(jwt_secret or os.environ.get("JWT_SECRET"))


@admin_app.command("connect")
def connect(
    org: Annotated[str, typer.Option("--org", help="Org slug whose members use this workspace.")],
    team: Annotated[str, typer.Option("--team", help="Slack team (workspace) id, like T012AB3CD.")],
    bot_token: Annotated[str, typer.Option("--bot-token", envvar="SLACK_BOT_TOKEN", show_envvar=False,
                                           help="Bot User OAuth Token, xoxb-… (or $SLACK_BOT_TOKEN, which "
                                                "keeps it out of `ps`).")],
    signing_secret: Annotated[str, typer.Option("--signing-secret", envvar="SLACK_SIGNING_SECRET",
                                                show_envvar=False,
                                                help="The app's Signing Secret (or $SLACK_SIGNING_SECRET).")],
    app_token: Annotated[str | None, typer.Option("--app-token", envvar="SLACK_APP_TOKEN", show_envvar=False,
                                                  help="App-level token, xapp-…, for Socket Mode "
                                                       "(or $SLACK_APP_TOKEN).")] = None,
    default_type: Annotated[str, typer.Option("--default-type",
                                              help="Worker type of `/eve PROMPT` with no `type:` prefix.")] = "general",
    jwt_secret: JwtOpt = None,
    database_url: DsnOpt = None,
) -> None:
    """Connect a Slack workspace to an org. Secrets are stored encrypted and never shown again."""
    from eve.cli.admin import _with_conn
    from eve.slack import admin as ops

    key = _key(jwt_secret)
    row = _with_conn(database_url, lambda c: ops.connect(c, key, org=org, team_id=team, bot_token=bot_token,
                                                         signing_secret=signing_secret, app_token=app_token,
                                                         default_type=default_type))
    mode = "Socket Mode (eve slack run)" if app_token else "HTTP (Request URL: <API URL>/slack/events)"
    typer.echo(f"connected Slack team {row['team_id']} to org {org} (installation {row['id']}); mode: {mode}")


@admin_app.command("link")
def link(
    team: Annotated[str, typer.Option("--team", help="Slack team id.")],
    slack_user: Annotated[str, typer.Option("--slack-user", help="Slack member id, like U012AB3CD.")],
    email: Annotated[str, typer.Option("--email", help="Email of the eve user (a member of the installation's "
                                                       "org) this Slack user acts as.")],
    database_url: DsnOpt = None,
) -> None:
    """Link a Slack user to an eve user (when their Slack email is not their verified eve email)."""
    from eve.cli.admin import _with_conn
    from eve.slack import admin as ops

    _with_conn(database_url, lambda c: ops.link(c, team_id=team, slack_user=slack_user, email=email))
    typer.echo(f"Slack user {slack_user} in {team} now acts as {email}")


@admin_app.command("list")
def list_installations(database_url: DsnOpt = None) -> None:
    """Connected workspaces (no secrets)."""
    from eve.cli.admin import _with_conn
    from eve.slack import admin as ops

    rows = _with_conn(database_url, ops.installations)
    if not rows:
        typer.echo("no Slack workspace connected (eve admin slack connect)")
    for r in rows:
        typer.echo(f"{r['team_id']}\torg={r['org']}\tdefault-type={r['default_type']}\t"
                   f"{'socket-mode' if r['socket_mode'] else 'http'}")


@admin_app.command("disconnect")
def disconnect(team: Annotated[str, typer.Option("--team", help="Slack team id.")],
               database_url: DsnOpt = None) -> None:
    """Forget a workspace: its secrets, links and undelivered thread messages."""
    from eve.cli.admin import _with_conn
    from eve.slack import admin as ops

    if not team:
        die("--team is required")
    _with_conn(database_url, lambda c: ops.disconnect(c, team))
    typer.echo(f"disconnected Slack team {team}")


def up_components(dsn: str, dsns: tuple[str, str], worker_env: dict[str, str],
                  jwt_secret: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """`eve up`'s Slack component, (name, argv, env), when a workspace is connected: the
    daemon posts as the workers' role (service), serves Socket Mode as the API's (eve_api),
    and gets JWT_SECRET, which decrypts the stored Slack secrets."""
    import sys

    from eve.cli._common import run as run_async
    from eve.db import connect

    async def connected() -> bool:
        conn = await connect(dsn)
        try:
            row = await (await conn.execute("SELECT EXISTS (SELECT 1 FROM eve.slack_installations) AS any")).fetchone()
            return bool(row and row["any"])
        finally:
            await conn.close()

    if not run_async(connected()):
        return []
    env = {**worker_env, "DATABASE_URL": dsns[1], "EVE_API_DATABASE_URL": dsns[0], "JWT_SECRET": jwt_secret}
    return [("slack", [sys.executable, "-m", "eve.daemons.slack"], env)]
