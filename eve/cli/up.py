"""`eve up`: the whole platform on one machine — PostgreSQL, migrations, bootstrap, API, workers.

Components are child processes (`python -m eve.daemons.api`, `python -m eve.daemons.worker`)
so a crash in one shows up as a restart in the status panel rather than taking down the
rest. Their output is merged with a prefix per component. Stop order on Ctrl+C/SIGTERM:
workers first (they drain), then the API, then PostgreSQL; everything by PID.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from eve.cli._common import console, run
from eve.errors import ValidationError

DEFAULT_DATA_DIR = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "eve"


def parse_workers(spec: str) -> dict[str, int]:
    """'general=2,code-review=1' → {'general': 2, 'code-review': 1}."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition("=")
        try:
            n = int(count) if count else 1
        except ValueError:
            raise ValidationError(f"--workers {part!r}: the count must be a number, e.g. general=2") from None
        if not name or n < 0:
            raise ValidationError(f"--workers {part!r} is not TYPE=COUNT")
        out[name] = n
    return out


class Output:
    """Merged, prefixed component logs; on a terminal, with a live status panel below them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: Any = None

    def line(self, text: str) -> None:
        with self.lock:
            if self.live is not None:
                self.live.console.print(text, markup=False, highlight=False, soft_wrap=True)
            else:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()

    def start_panel(self, components: list[Component], pg: Any) -> None:
        if not sys.stdout.isatty():
            return
        from rich.live import Live

        self.live = Live(status_table(components, pg), console=console, refresh_per_second=2,
                         get_renderable=lambda: status_table(components, pg))
        self.live.start()

    def stop_panel(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def status_table(components: list[Component], pg: Any) -> Any:
    from rich.table import Table

    t = Table(title="eve up — Ctrl+C stops everything", title_justify="left", box=None, header_style="bold")
    for col in ("component", "pid", "state", "restarts", "uptime"):
        t.add_column(col)
    if pg is not None:
        pid = pg.running_pid()
        t.add_row("postgresql", str(pid or "-"), "[green]running[/]" if pid else "[red]stopped[/]", "0", "")
    for c in components:
        alive = c.proc is not None and c.proc.poll() is None
        state = c.state if alive else f"exited ({c.proc.returncode})" if c.proc else "starting"
        color = "green" if alive and c.state in ("ready", "running") else "yellow" if alive else "red"
        t.add_row(c.name, str(c.proc.pid if c.proc else "-"), f"[{color}]{state}[/]", str(c.restarts),
                  f"{int(time.monotonic() - c.started_at)}s" if alive else "")
    return t


@dataclass
class Component:
    name: str
    cmd: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    restarts: int = 0
    state: str = "starting"
    started_at: float = 0.0

    def start(self, out: Output) -> None:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True)
        self.started_at = time.monotonic()
        self.state = "running" if self.name != "api" else "starting"
        threading.Thread(target=self._pump, args=(self.proc, out), daemon=True).start()

    def _pump(self, proc: subprocess.Popen[str], out: Output) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.line(f"{self.name:<14} | {line.rstrip()}")

    def stop(self, timeout: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _free_port() -> int:
    from eve.pg import free_port

    return free_port()


def _jwt_secret(data_dir: Path) -> str:
    """One secret per data dir, kept 0600, so tokens survive a restart of `eve up`."""
    path = data_dir / "jwt.secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def _ready(url: str, timeout: float, comp: Component) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if comp.proc is not None and comp.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def up(
    workers: Annotated[str, typer.Option("--workers", help="Workers per type: TYPE=COUNT[,TYPE=COUNT]. "
                                                           "Default: general=1.")] = "general=1",
    port: Annotated[int, typer.Option("--port", help="API port on 127.0.0.1.")] = 3000,
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="EVE_DATA_DIR",
                                           show_default="$XDG_DATA_HOME/eve or ~/.local/share/eve",
                                           help="Embedded PostgreSQL data, JWT secret and workspaces.")] = DEFAULT_DATA_DIR,
    pg_port: Annotated[int, typer.Option("--pg-port", help="Port of the embedded PostgreSQL on 127.0.0.1.")] = 54320,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="DATABASE_URL",
        help="Use this PostgreSQL instead of the embedded one.", show_envvar=False)] = None,
) -> None:
    """Start the whole platform: PostgreSQL (embedded unless DATABASE_URL is set), migrations,
    first-run bootstrap (org 'default', operator admin@localhost, an API key printed once and
    saved to the CLI config), the API and the workers. Ctrl+C stops everything it started.
    """
    from eve import admin, config, migrate
    from eve.db import connect, describe
    from eve.pg import EmbeddedPostgres

    counts = parse_workers(workers)
    data_dir = data_dir.expanduser().resolve()
    out = console
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pg: EmbeddedPostgres | None = None
    components: list[Component] = []
    output = Output()
    try:
        if database_url:
            dsn = database_url
            out.print(f"database   {describe(dsn)} (DATABASE_URL)")
        else:
            pg = EmbeddedPostgres(data_dir, port=pg_port)
            dsn = pg.start()
            out.print(f"database   embedded PostgreSQL in {pg.data_dir} (pid {pg.running_pid()}, port {pg.port})")
        applied = run(migrate.migrate(dsn))
        out.print(f"schema     {len(applied)} migration(s) applied" if applied else "schema     up to date")

        async def boot() -> admin.CreatedKey | None:
            conn = await connect(dsn)
            try:
                return await admin.bootstrap(conn)
            finally:
                await conn.close()

        key = run(boot())
        api_url = f"http://127.0.0.1:{port}"
        if key:
            config.write_value("api-key", key.token)
            config.write_value("api-url", api_url)
            out.print(f"API key    {key.token}")
            out.print(f"           (operator key for org 'default'; shown once, saved to {config.config_path()})")
        else:
            out.print("API key    already bootstrapped (the CLI config has it; another: "
                      "eve admin apikey create --org default --user admin@localhost)")
        env = {**os.environ, "DATABASE_URL": dsn, "JWT_SECRET": _jwt_secret(data_dir), "PYTHONUNBUFFERED": "1",
               "EVE_API_URL": os.environ.get("EVE_API_URL", api_url)}
        api = Component("api", [sys.executable, "-m", "eve.daemons.api", "--host", "127.0.0.1", "--port",
                                str(port)], env)
        components.append(api)
        for wtype, n in counts.items():
            for i in range(n):
                hp = _free_port()
                components.append(Component(
                    f"worker-{wtype}-{i + 1}",
                    [sys.executable, "-m", "eve.daemons.worker", "--type", wtype, "--health-port", str(hp),
                     "--health-host", "127.0.0.1", "--workspace-root", str(data_dir / "workspaces")], env))
        for comp in components:
            comp.start(output)
        if not _ready(f"{api_url}/health?ready=1", 60, api):
            out.print(f"[red]the API did not become ready on {api_url}[/red] — see its lines above")
            raise typer.Exit(1)
        api.state = "ready"
        out.print(f"ready: API {api_url}  DSN {dsn}")
        output.start_panel(components, pg)
        out.print("try:   eve status   ·   eve request create --worker-type general --prompt 'Echo hello world' "
                  "--wait   ·   eve ui   (Ctrl+C stops everything)")
        while not stop.wait(0.5):
            for comp in components:
                if comp.proc is not None and comp.proc.poll() is not None and not stop.is_set():
                    comp.restarts += 1
                    output.line(f"{comp.name} exited ({comp.proc.returncode}); restarting (restart {comp.restarts})")
                    if comp.restarts > 5:
                        out.print(f"[red]{comp.name} keeps failing; stopping[/red]")
                        stop.set()
                        break
                    time.sleep(min(comp.restarts, 5))
                    comp.start(output)
            if pg is not None and pg.running_pid() is None:
                out.print(f"[red]embedded PostgreSQL exited; see {pg.log_file}[/red]")
                raise typer.Exit(1)
    finally:
        output.stop_panel()
        if components:
            out.print("stopping: workers (draining), then the API, then PostgreSQL…")
        for comp in [c for c in components if c.name != "api"]:
            threading.Thread(target=comp.stop, args=(40,), daemon=True).start()
        for comp in [c for c in components if c.name != "api"]:
            if comp.proc is not None:
                try:
                    comp.proc.wait(45)
                except subprocess.TimeoutExpired:
                    comp.stop(1)
        for comp in [c for c in components if c.name == "api"]:
            comp.stop(15)
        if pg is not None:
            pg.stop()
        out.print("stopped")
