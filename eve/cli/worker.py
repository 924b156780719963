"""`eve worker ...`: run a worker daemon (eve.daemons.worker, loaded lazily by name)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Run workers that claim requests and execute Claude Code variants.", no_args_is_help=True)


@app.command("run")
def run(
    worker_type: Annotated[str, typer.Option("--type", envvar="WORKER_TYPE", help="Worker type to serve.")] = "general",
    slots: Annotated[int, typer.Option(envvar="EVE_WORKER_SLOTS", min=1, help="Requests run at once.")] = 1,
    health_port: Annotated[int, typer.Option(envvar="EVE_HEALTH_PORT",
                                             help="Port for /health and /metrics (0: any free port, -1: off).")] = 8080,
    workspace_root: Annotated[Path, typer.Option(envvar="EVE_WORKSPACE_ROOT",
                                                 help="One directory per request is made under it.")] = Path("/workspace"),
    grace: Annotated[float, typer.Option(envvar="EVE_WORKER_GRACE",
                                         help="Seconds running requests get to finish on SIGTERM before "
                                              "they are stopped and requeued.")] = 30.0,
    poll_interval: Annotated[float, typer.Option(envvar="EVE_POLL_INTERVAL",
                                                 help="Poll fallback (s) besides LISTEN/NOTIFY wake-ups.")] = 5.0,
    isolate_home: Annotated[bool, typer.Option(envvar="EVE_ISOLATE_HOME",
                                               help="Give each agent its own HOME inside its workspace.")] = False,
    database_url: Annotated[str | None, typer.Option(envvar="DATABASE_URL", show_envvar=False,
                                                     help="PostgreSQL URL (default: $DATABASE_URL).")] = None,
) -> None:
    """Claim requests of one worker type and run them through their Claude Code variant.

    SIGTERM/SIGINT drain: no new claims, running requests get --grace seconds, the rest
    are requeued. Workers also run the lease reaper (one at a time across all workers),
    so no separate reaper process is needed.
    """
    args = ["--type", worker_type, "--slots", str(slots), "--health-port", str(health_port),
            "--workspace-root", str(workspace_root), "--grace", str(grace), "--poll-interval", str(poll_interval)]
    if isolate_home:
        args.append("--isolate-home")
    if database_url:
        args += ["--database-url", database_url]
    importlib.import_module("eve.daemons.worker.main").cli(args)
