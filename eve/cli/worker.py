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
    poll_interval: Annotated[float | None, typer.Option(envvar="EVE_POLL_INTERVAL", show_default="5, or 1 with "
                                                        "--no-listen",
                                                        help="Poll fallback (s) besides LISTEN/NOTIFY "
                                                             "wake-ups.")] = None,
    listen: Annotated[bool, typer.Option("--listen/--no-listen",
                                         help="--no-listen: poll only, no LISTEN/NOTIFY and no session state, for "
                                              "PgBouncer in transaction pooling (same as EVE_LISTEN=off).")] = True,
    worker_id: Annotated[str | None, typer.Option("--id", envvar="EVE_WORKER_ID",
                                                  help="Stable worker id, e.g. general-1 (default: "
                                                       "worker-HOST-PID).")] = None,
    sandbox: Annotated[str, typer.Option(envvar="EVE_SANDBOX",
                                         help="Agent isolation: auto, bwrap, uid or none.")] = "auto",
    sandbox_hide: Annotated[list[Path] | None, typer.Option(
        "--sandbox-hide", help="A path agents must not see (repeatable; env EVE_SANDBOX_HIDE, colon-separated), "
                               "e.g. the data dir.")] = None,
    sandbox_uid_base: Annotated[int | None, typer.Option(envvar="EVE_SANDBOX_UID_BASE",
                                                         help="First uid of this worker's agents in uid "
                                                              "mode.")] = None,
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
            "--workspace-root", str(workspace_root), "--grace", str(grace), "--sandbox", sandbox]
    if poll_interval is not None:
        args += ["--poll-interval", str(poll_interval)]
    if not listen:
        args.append("--no-listen")
    if worker_id:
        args += ["--id", worker_id]
    for path in sandbox_hide or []:
        args += ["--sandbox-hide", str(path)]
    if sandbox_uid_base is not None:
        args += ["--sandbox-uid-base", str(sandbox_uid_base)]
    if isolate_home:
        args.append("--isolate-home")
    if database_url:
        args += ["--database-url", database_url]
    importlib.import_module("eve.daemons.worker.main").cli(args)
