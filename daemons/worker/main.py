"""Process entry: settings from flags/env, signals, the health server, the worker."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from eve import logging as eve_logging
from eve import metrics
from eve.daemons.worker.daemon import Worker, WorkerConfig
from eve.daemons.worker.health import serve
from eve.db import listen_enabled
from eve.errors import EveError
from eve.executor import egress
from eve.executor import limits as agent_limits
from eve.executor.cgroups import MECHANISMS
from eve.executor.egress import NETWORK_MODES
from eve.executor.sandbox import DEFAULT_UID_BASE, MODES, make_non_dumpable
from eve.settings import QueueSettings


async def run(config: WorkerConfig) -> int:
    # same-uid processes (an agent in `none`/`uid` mode included) cannot read our
    # /proc/PID/environ (DATABASE_URL) or ptrace us
    make_non_dumpable()
    worker = Worker(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    server = None
    if config.health_port is not None:
        server = await serve(config.health_host, config.health_port, worker.health, metrics.metrics_token())
        port = server.sockets[0].getsockname()[1]
        worker.log("info", f"health and metrics on http://{config.health_host}:{port}/health", health_port=port)
    try:
        await worker.run()
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()
    return 0


def parse(argv: list[str] | None = None) -> WorkerConfig:
    env = os.environ
    p = argparse.ArgumentParser(prog="eve worker run", description="Run a worker for one worker type.")
    p.add_argument("--type", dest="worker_type", default=env.get("WORKER_TYPE", "general"))
    p.add_argument("--slots", type=int, default=int(env.get("EVE_WORKER_SLOTS", "1")))
    p.add_argument("--health-port", type=int, default=int(env.get("EVE_HEALTH_PORT", "8080")))
    p.add_argument("--health-host", default=env.get("EVE_HEALTH_HOST", "0.0.0.0"))
    p.add_argument("--workspace-root", default=env.get("EVE_WORKSPACE_ROOT", "/workspace"))
    p.add_argument("--grace", type=float, default=float(env.get("EVE_WORKER_GRACE", "30")))
    p.add_argument("--poll-interval", type=float, default=None,
                   help="Seconds between polls (default 5, or 1 without LISTEN).")
    p.add_argument("--isolate-home", action="store_true", default=env.get("EVE_ISOLATE_HOME", "") == "1")
    p.add_argument("--database-url", default=env.get("DATABASE_URL"))
    p.add_argument("--id", dest="worker_id", default=env.get("EVE_WORKER_ID") or None,
                   help="Stable worker id (default: worker-HOST-PID).")
    p.add_argument("--sandbox", choices=MODES, default=env.get("EVE_SANDBOX") or "auto")
    p.add_argument("--sandbox-hide", action="append",
                   default=[x for x in env.get("EVE_SANDBOX_HIDE", "").split(":") if x])
    p.add_argument("--agent-network", choices=("auto", *NETWORK_MODES), default=env.get("EVE_AGENT_NETWORK") or "auto",
                   help="filtered: each agent gets its own network namespace and reaches only its provider, "
                        "the eve API, git hosts and --agent-net-allow, through an allowlisting proxy (needs the "
                        "bwrap sandbox); open: the host's network; auto (default): filtered wherever bwrap can "
                        "do it (EVE_AGENT_NETWORK).")
    p.add_argument("--agent-net-allow", action="append", default=[env.get("EVE_AGENT_NET_ALLOW", "")],
                   help="More hosts agents may reach when the network is filtered: host, host:port or "
                        "*.domain (no port: 443 and 80), comma-separated, repeatable (EVE_AGENT_NET_ALLOW).")
    p.add_argument("--sandbox-uid-base", type=int, default=int(env.get("EVE_SANDBOX_UID_BASE") or DEFAULT_UID_BASE))
    p.add_argument("--keep-workspaces", action="store_true", default=env.get("EVE_KEEP_WORKSPACES", "") == "1")
    p.add_argument("--keep-failed-hours", type=float, default=float(env.get("EVE_KEEP_FAILED_HOURS") or 24))
    p.add_argument("--min-free-disk-mb", type=int, default=int(env.get("EVE_MIN_FREE_DISK_MB") or 1024))
    p.add_argument("--api-url", default=env.get("EVE_API_URL") or None,
                   help="The API agents reach with their own request token (EVE_API_TOKEN); without it agents "
                        "get no token and cannot orchestrate.")
    p.add_argument("--session-archive-mb", type=int, default=int(env.get("EVE_SESSION_ARCHIVE_MB") or 100),
                   help="Largest compressed workspace kept for a waiting request, or for a finished Slack-thread "
                        "request a mention may continue (default 100); above it the resumed agent is told its "
                        "files were not kept.")
    p.add_argument("--session-workspace-max-mb", type=int,
                   default=int(env.get("EVE_SESSION_WORKSPACE_MAX_MB") or 1024),
                   help="Largest workspace, its files added up uncompressed, that is archived for a resume "
                        "(default 1024; EVE_SESSION_WORKSPACE_MAX_MB). Checked before any file is read, and "
                        "again before a stored workspace is unpacked: an agent's sparse or highly compressible "
                        "files must not cost a worker its disk or memory.")
    p.add_argument("--kept-session-days", type=float, default=float(env.get("EVE_KEPT_SESSION_DAYS") or 7),
                   help="How long a finished Slack-thread request's Claude Code session is kept for a mention "
                        "in its thread to continue it (default 7; EVE_KEPT_SESSION_DAYS).")
    p.add_argument("--no-listen", action="store_true", default=not listen_enabled(),
                   help="Poll only, no LISTEN (PgBouncer in transaction pooling); same as EVE_LISTEN=off.")
    for name, (var, default, unit) in agent_limits.SPEC.items():
        p.add_argument(f"--agent-{name.replace('_', '-')}", dest=f"agent_{name}", default=None, metavar="N",
                       help=f"Per-agent limit in {unit} (default {default:g}, 0: none; {var}). A worker type may "
                            "narrow it (worker_types.config.limits), never widen it.")
    p.add_argument("--agent-limits", choices=("auto", *MECHANISMS), default=env.get("EVE_AGENT_LIMITS") or "auto",
                   help="What holds the agents' limits: auto (cgroup v2 with a delegated subtree, else cgroup v1, "
                        "else per-process rlimits), or one of them, refusing to start without it (EVE_AGENT_LIMITS).")
    a = p.parse_args(argv)
    try:
        limits = agent_limits.from_env(env, **{n: getattr(a, f"agent_{n}") for n in agent_limits.SPEC})
    except EveError as exc:
        p.error(exc.message)
    if not a.database_url:
        p.error("no database: set DATABASE_URL or pass --database-url")
    if a.slots < 1:
        p.error("--slots must be at least 1")
    try:
        egress.base_rules(a.agent_net_allow)
    except ValueError as exc:
        p.error(f"--agent-net-allow: {exc}")
    if a.no_listen:
        os.environ["EVE_LISTEN"] = "off"  # process-wide: eve.db then keeps no session state either
    poll = a.poll_interval if a.poll_interval is not None else float(
        env.get("EVE_POLL_INTERVAL") or (5 if listen_enabled() else 1))
    return WorkerConfig(dsn=a.database_url, worker_type=a.worker_type, slots=a.slots,
                        health_port=a.health_port if a.health_port >= 0 else None, health_host=a.health_host,
                        workspace_root=Path(a.workspace_root), grace_s=a.grace, poll_interval_s=poll,
                        isolate_home=a.isolate_home, queue=QueueSettings(), listen=listen_enabled(),
                        sandbox=a.sandbox, sandbox_hide=tuple(a.sandbox_hide), sandbox_uid_base=a.sandbox_uid_base,
                        agent_network=a.agent_network, agent_net_allow=tuple(x for x in a.agent_net_allow if x),
                        keep_workspaces=a.keep_workspaces, keep_failed_s=a.keep_failed_hours * 3600,
                        min_free_disk_mb=a.min_free_disk_mb, api_url=a.api_url,
                        session_archive_cap_bytes=a.session_archive_mb * 1024 * 1024,
                        session_unpacked_cap_bytes=a.session_workspace_max_mb * 1024 * 1024,
                        reuse_local_workspaces=env.get("EVE_SESSION_REUSE_LOCAL", "1") != "0",
                        kept_session_days=a.kept_session_days, agent_limits=limits,
                        agent_limits_mechanism=a.agent_limits,
                        **({"worker_id": a.worker_id} if a.worker_id else {}))


def cli(argv: list[str] | None = None) -> None:
    eve_logging.setup(os.environ.get("EVE_LOG_LEVEL", "INFO"))
    config = parse(argv)
    try:
        sys.exit(asyncio.run(run(config)))
    except EveError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
