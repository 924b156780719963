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
    isolate_home: Annotated[bool, typer.Option(envvar="EVE_ISOLATE_HOME",
                                               help="Give each agent its own HOME inside its workspace.")] = False,
    database_url: Annotated[str | None, typer.Option(envvar="DATABASE_URL", show_envvar=False,
                                                     help="PostgreSQL URL (default: $DATABASE_URL).")] = None,
    worker_id: Annotated[str | None, typer.Option(
        "--id", envvar="EVE_WORKER_ID",
        help="Stable worker name (general-1, the systemd instance, the pod name). A worker restarting under "
             "the same id requeues what it held at once. Default: worker-HOST-PID.")] = None,
    sandbox: Annotated[str, typer.Option(
        envvar="EVE_SANDBOX",
        help="How agents are contained: auto (bwrap if it works here, else a uid per slot, else refuse), "
             "bwrap, uid, or none (no containment; development only). See docs/security.md.")] = "auto",
    sandbox_hide: Annotated[list[str] | None, typer.Option(
        help="A path agents must never see (data dir, secrets); repeatable. Env: EVE_SANDBOX_HIDE=a:b.")] = None,
    sandbox_uid_base: Annotated[int | None, typer.Option(
        envvar="EVE_SANDBOX_UID_BASE", show_default="61000",
        help="Root workers run slot i's agent as uid BASE+i; give workers on one host distinct bases.")] = None,
    agent_network: Annotated[str, typer.Option(
        envvar="EVE_AGENT_NETWORK",
        help="Agents' network: auto (filtered wherever bwrap can make a network namespace, else the host's), "
             "filtered (refuse to start without it), or open (the host's network). Filtered, an agent "
             "reaches only its provider, the eve API, git hosts and --agent-net-allow, through a proxy that "
             "refuses the rest. See docs/security.md.")] = "auto",
    agent_net_allow: Annotated[list[str] | None, typer.Option(
        help="More hosts agents may reach when filtered: host, host:port or *.domain (no port: 443 and 80), "
             "comma-separated; repeatable. Env: EVE_AGENT_NET_ALLOW.")] = None,
    keep_workspaces: Annotated[bool, typer.Option(envvar="EVE_KEEP_WORKSPACES",
                                                  help="Keep every workspace (development).")] = False,
    keep_failed_hours: Annotated[float, typer.Option(
        envvar="EVE_KEEP_FAILED_HOURS",
        help="Failed requests' workspaces are kept this long for debugging; successful ones are deleted "
             "when their result is written.")] = 24.0,
    min_free_disk_mb: Annotated[int, typer.Option(
        envvar="EVE_MIN_FREE_DISK_MB",
        help="Stop claiming (state disk_low) while less than this is free under the workspace root.")] = 1024,
    api_url: Annotated[str | None, typer.Option(
        envvar="EVE_API_URL", show_envvar=False,
        help="The API agents reach with their own request token (EVE_API_TOKEN); without it agents get no "
             "token and cannot orchestrate (children, eve wait, eve ask). Env: EVE_API_URL.")] = None,
    session_archive_mb: Annotated[int | None, typer.Option(
        envvar="EVE_SESSION_ARCHIVE_MB", show_default="100", min=1,
        help="Largest compressed workspace kept for a waiting request (or a finished Slack-thread one a "
             "mention may continue); above it the resumed agent is told its files were not kept.")] = None,
    session_workspace_max_mb: Annotated[int | None, typer.Option(
        envvar="EVE_SESSION_WORKSPACE_MAX_MB", show_default="1024", min=1,
        help="Largest workspace, its files added up uncompressed, archived for a resume; checked before "
             "any file is read and before a stored one is unpacked.")] = None,
    kept_session_days: Annotated[float | None, typer.Option(
        envvar="EVE_KEPT_SESSION_DAYS", show_default="7", min=0,
        help="How long a finished Slack-thread request's session is kept for a mention to continue it.")] = None,
    agent_memory_mb: Annotated[int | None, typer.Option(
        envvar="EVE_AGENT_MEMORY_MB", show_default="4096",
        help="Memory per agent, its whole process tree and its /tmp (MiB; 0: none). Past it: memory_limit.")] = None,
    agent_pids: Annotated[int | None, typer.Option(
        envvar="EVE_AGENT_PIDS", show_default="512",
        help="Processes and threads per agent (0: none); past it the agent's forks fail.")] = None,
    agent_tmp_mb: Annotated[int | None, typer.Option(
        envvar="EVE_AGENT_TMP_MB", show_default="1024", help="Size of an agent's private /tmp (MiB; bwrap).")] = None,
    agent_disk_mb: Annotated[int | None, typer.Option(
        envvar="EVE_AGENT_DISK_MB", show_default="10240",
        help="An agent's workspace (MiB; 0: none). Past it: disk_limit.")] = None,
    agent_max_minutes: Annotated[float | None, typer.Option(
        envvar="EVE_AGENT_MAX_MINUTES", show_default="120",
        help="Wall time per agent turn, whatever a request's timeout (0: none). Past it: time_limit.")] = None,
    agent_idle_minutes: Annotated[float | None, typer.Option(
        envvar="EVE_AGENT_IDLE_MINUTES", show_default="20",
        help="An agent with no output this long is stopped (0: never): idle_timeout.")] = None,
    agent_cpus: Annotated[float | None, typer.Option(
        envvar="EVE_AGENT_CPUS", show_default="0 (an equal share)", help="A CPU cap per agent (cgroups).")] = None,
    agent_limits: Annotated[str, typer.Option(
        envvar="EVE_AGENT_LIMITS",
        help="What holds the limits: auto (cgroup v2 delegated subtree, else cgroup v1, else rlimits), "
             "cgroup2, cgroup1 or rlimit. See docs/security.md.")] = "auto",
) -> None:
    """Claim requests of one worker type and run them through their Claude Code variant.

    SIGTERM/SIGINT drain: no new claims, running requests get --grace seconds, the rest
    are requeued. Workers also run the lease reaper (one at a time across all workers),
    so no separate reaper process is needed.
    """
    if sandbox not in ("auto", "bwrap", "uid", "none"):
        raise typer.BadParameter("must be one of auto, bwrap, uid, none", param_hint="--sandbox")
    args = ["--type", worker_type, "--slots", str(slots), "--health-port", str(health_port),
            "--workspace-root", str(workspace_root), "--grace", str(grace), "--sandbox", sandbox,
            "--keep-failed-hours", str(keep_failed_hours), "--min-free-disk-mb", str(min_free_disk_mb)]
    if agent_network not in ("auto", "filtered", "open"):
        raise typer.BadParameter("must be one of auto, filtered, open", param_hint="--agent-network")
    args += ["--agent-network", agent_network]
    for entry in agent_net_allow or []:
        args += ["--agent-net-allow", entry]
    for flag, value in (("memory-mb", agent_memory_mb), ("pids", agent_pids), ("tmp-mb", agent_tmp_mb),
                        ("disk-mb", agent_disk_mb), ("max-minutes", agent_max_minutes),
                        ("idle-minutes", agent_idle_minutes), ("cpus", agent_cpus)):
        if value is not None:
            args += [f"--agent-{flag}", str(value)]
    if agent_limits not in ("auto", "cgroup2", "cgroup1", "rlimit"):
        raise typer.BadParameter("must be one of auto, cgroup2, cgroup1, rlimit", param_hint="--agent-limits")
    args += ["--agent-limits", agent_limits]
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
    if keep_workspaces:
        args.append("--keep-workspaces")
    if database_url:
        args += ["--database-url", database_url]
    for flag, value in (("api-url", api_url), ("session-archive-mb", session_archive_mb),
                        ("session-workspace-max-mb", session_workspace_max_mb),
                        ("kept-session-days", kept_session_days)):
        if value is not None:  # unset: the daemon reads the same variables itself
            args += [f"--{flag}", str(value)]
    importlib.import_module("eve.daemons.worker.main").cli(args)
