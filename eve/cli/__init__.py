"""The `eve` command line.

Startup stays light (`eve --help` well under 300 ms): subcommand modules import only
core `eve`; the web and TUI stacks are loaded by `importlib` inside the commands that
run them, never at import time. Expected errors become one line and exit 1; usage
errors exit 2; `EVE_DEBUG=1` shows tracebacks.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from eve import __version__
from eve.cli import (admin, api, config_cmd, db, doctor, hitl, keys, members, orgs, platform, requests, schedules,
                     slack, tree, ui, up, worker)
from eve.cli import secrets as secrets_cmd
from eve.cli import webhooks as webhooks_cmd
from eve.cli._common import report_eve_error
from eve.errors import EveError

app = typer.Typer(
    name="eve",
    help="eve-horizon: run AI coding agents as queued jobs. Operate, inspect and steer the platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# talking to the API
app.add_typer(requests.request_app, name="request")
app.add_typer(requests.result_app, name="result")
app.command("status")(platform.status)
app.command("queue")(platform.queue)
app.add_typer(platform.workers_app, name="workers")
app.command("tail")(platform.tail)
app.command("logs")(requests.logs)
app.command("replay")(requests.replay)
app.command("cancel")(requests.cancel)
app.command("wait")(tree.wait)
app.add_typer(schedules.schedule_app, name="schedule")
app.add_typer(hitl.hitl_app, name="hitl")
app.command("ask")(hitl.ask)
app.add_typer(keys.app, name="keys")
app.add_typer(members.app, name="members")
app.add_typer(secrets_cmd.app, name="secrets")
app.add_typer(webhooks_cmd.app, name="webhooks")
app.add_typer(orgs.app, name="org")
app.command("ui")(ui.ui)
app.add_typer(config_cmd.app, name="config")
app.command("doctor")(doctor.doctor)
# running the platform
app.command("up")(up.up)
app.add_typer(api.app, name="api")
app.add_typer(worker.app, name="worker")
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(slack.app, name="slack")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"eve-horizon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    api_url: Annotated[str | None, typer.Option("--api-url", help="API base URL (overrides EVE_API_URL and "
                                                                   "the config file).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """eve-horizon command line."""
    ctx.obj = {"api_url": api_url}


def main() -> None:
    """Entry point: run the app; expected errors become one line and exit 1."""
    try:
        app(standalone_mode=True)
    except EveError as exc:
        sys.exit(report_eve_error(exc))
    except KeyboardInterrupt:
        sys.exit(130)
