"""`eve up`: the whole platform on one machine — PostgreSQL, migrations, bootstrap, API, workers.

Components are child processes (`python -m eve.daemons.api`, `python -m eve.daemons.worker`)
so a crash in one shows up as a restart in the status panel rather than taking down the
rest. Their output is merged with a prefix per component. Stop order on Ctrl+C/SIGTERM:
workers first (they drain), then the API, then PostgreSQL; everything by PID.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from eve.cli import slack
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
        self.pg_restarts = 0

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

        self.live = Live(status_table(components, pg, self.pg_restarts), console=console, refresh_per_second=2,
                         get_renderable=lambda: status_table(components, pg, self.pg_restarts))
        self.live.start()

    def stop_panel(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def status_table(components: list[Component], pg: Any, pg_restarts: int = 0) -> Any:
    from rich.table import Table

    t = Table(title="eve up — Ctrl+C stops everything", title_justify="left", box=None, header_style="bold")
    for col in ("component", "pid", "state", "restarts", "uptime"):
        t.add_column(col)
    if pg is not None:
        pid = pg.running_pid()
        t.add_row("postgresql", str(pid or "-"), "[green]running[/]" if pid else "[red]restarting[/]",
                  str(pg_restarts), "")
    for c in components:
        alive = c.proc is not None and c.proc.poll() is None
        state = c.state if alive else "drained (stays stopped)" if c.drained else \
            f"exited ({c.proc.returncode})" if c.proc else "starting"
        color = "green" if alive and c.state in ("ready", "running") else "yellow" if alive or c.drained else "red"
        t.add_row(c.name, str(c.proc.pid if c.proc else "-"), f"[{color}]{state}[/]", str(c.restarts),
                  f"{int(time.monotonic() - c.started_at)}s" if alive else "")
    return t


def _die_with_eve_up() -> Any:
    """preexec for each child: SIGTERM when `eve up` dies, even by kill -9 (PR_SET_PDEATHSIG), so
    no API or worker outlives it (its guard stops PostgreSQL the same way). Children are
    started from eve up's main thread, which lives as long as it does. libc is looked up
    here, before the fork: the child only makes the call."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the guard is all there is
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # eve up died before the call: nobody would send it
            os._exit(1)

    return preexec


@dataclass
class Component:
    name: str
    cmd: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    restarts: int = 0
    state: str = "starting"
    started_at: float = 0.0
    exits: deque[float] = field(default_factory=deque)
    restart_at: float | None = None
    drained: bool = False  # a worker an operator drained: it stays stopped
    api: bool = False  # an API process (stopped after the workers; never "drained")

    def start(self, out: Output) -> None:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True, preexec_fn=_die_with_eve_up(),
                                     )
        self.started_at = time.monotonic()
        self.restart_at = None
        self.state = "starting" if self.api else "running"
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


class CrashWindow:
    """Exits within a sliding window: restart at once, back off when they pile up, and give
    up past `limit` exits within `window_s` (a component that cannot stay up)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s

    def record(self, exits: deque[float], now: float) -> tuple[bool, float]:
        """(give up?, delay before the next start) after an exit at `now`."""
        exits.append(now)
        while exits and now - exits[0] > self.window_s:
            exits.popleft()
        n = len(exits)
        if n > self.limit:
            return True, 0.0
        return False, 0.0 if n <= 2 else min(0.5 * 2 ** (n - 3), 5.0)


SUPERVISOR_TICK_S = 0.1


def drained(dsn: str, worker_id: str) -> bool:
    """Whether an operator drained this worker (its row still carries the request). Unknown — the
    database is away — counts as no: a worker that may have crashed is restarted."""
    import psycopg

    from eve.queries import Q

    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            row = conn.execute(Q.worker_drained, {"id": worker_id}).fetchone()
    except psycopg.Error:
        return False
    return bool(row and row[0])


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


def password_hint(pg: Any) -> str:
    """Where the superuser's password lives, never the password: eve up's output ends up in
    terminals' scrollback, CI logs and journald, which are read by more people than the data dir."""
    return f"superuser password in {pg.password_file}" if pg is not None else "password not shown: see DATABASE_URL"


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


# Never handed to a child: the superuser's DSN and password, the JWT secret (the API gets it
# explicitly), the operator's API key.
_PARENT_SECRETS = ("DATABASE_URL", "JWT_SECRET", "PGPASSWORD", "PGPASSFILE", "EVE_TEST_DATABASE_URL", "EVE_API_KEY",
                   "DB_PASSWORD")
SANDBOX_UID_BASE = 61000
SANDBOX_UID_STRIDE = 100


def child_envs(dsns: tuple[str, str], jwt_secret: str, api_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """(API env, worker env): each with its own DSN; only the API gets JWT_SECRET."""
    base = {k: v for k, v in os.environ.items() if k not in _PARENT_SECRETS}
    base.update({"PYTHONUNBUFFERED": "1", "EVE_API_URL": os.environ.get("EVE_API_URL", api_url)})
    return ({**base, "DATABASE_URL": dsns[0], "JWT_SECRET": jwt_secret}, {**base, "DATABASE_URL": dsns[1]})


def default_api_processes() -> int:
    """One API process per two cores, at least one: the workers and PostgreSQL need the rest."""
    return max(1, (os.cpu_count() or 1) // 2)


def api_command(port: int, processes: int) -> list[str]:
    """Several processes share the port with SO_REUSEPORT, each supervised on its own."""
    return [sys.executable, "-m", "eve.daemons.api", "--host", "127.0.0.1", "--port", str(port),
            *(["--reuse-port"] if processes > 1 else [])]


def agent_limit_env(**flags: float | None) -> dict[str, str]:
    """The EVE_AGENT_* variables for the flags given (the workers and the API read them), checked
    here so a bad value is an error before anything starts."""
    from eve.executor import limits

    limits.from_env({}, **flags)  # ConfigError (exit 1 with the message) for a bad value
    return {limits.SPEC[k][0]: f"{v:g}" for k, v in flags.items() if v is not None}


def worker_command(wtype: str, n: int, index: int, data_dir: Path, sandbox: str, network: str = "auto",
                   workspace_root: Path | None = None) -> list[str]:
    """`<type>-<n>` as its stable id (a restarted worker requeues what its dead self held), its
    own sandbox uid range, the data dir hidden from its agents, and their network mode."""
    return [sys.executable, "-m", "eve.daemons.worker", "--id", f"{wtype}-{n}", "--type", wtype,
            "--health-port", str(_free_port()), "--health-host", "127.0.0.1",
            "--workspace-root", str(workspace_root or data_dir / "workspaces"), "--sandbox", sandbox,
            "--sandbox-hide", str(data_dir), "--sandbox-uid-base", str(SANDBOX_UID_BASE + SANDBOX_UID_STRIDE * index),
            "--agent-network", network]


def default_workspace_root(data_dir: Path, sandbox: str) -> Path:
    """`DATA_DIR/workspaces`, except where agents run as their own uid (uid mode, or auto
    resolving to it): the data dir is 0700 and often sits under a 0700 HOME, so their uid
    could not reach their own workspace. Then a directory of its own under /var/lib, one
    per data dir, whose parents every uid may pass through."""
    mode = sandbox
    if sandbox == "auto":
        from eve.executor.sandbox import SandboxUnavailable, choose

        try:
            mode = choose("auto").mode
        except SandboxUnavailable:
            mode = "none"  # the workers refuse to start and say why
    if mode == "uid" and os.geteuid() == 0:
        tag = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
        return Path("/var/lib/eve-horizon") / tag / "workspaces"
    return data_dir / "workspaces"


async def _least_privilege(dsn: str, data_dir: Path) -> tuple[str, str] | str:
    """(API DSN, worker DSN) on their own login roles, or the reason they could not be made."""
    import psycopg

    from eve import roles
    from eve.db import connect

    api_role, worker_role = roles.platform_roles(data_dir)
    conn = await connect(dsn)
    try:
        await roles.ensure_login_roles(conn, [api_role, worker_role])
    except psycopg.errors.InsufficientPrivilege as exc:
        return str(exc).strip().splitlines()[0]
    finally:
        await conn.close()
    return roles.dsn_for(dsn, api_role), roles.dsn_for(dsn, worker_role)


def up(
    workers: Annotated[str, typer.Option("--workers", help="Workers per type: TYPE=COUNT[,TYPE=COUNT]. "
                                                           "Default: general=1.")] = "general=1",
    port: Annotated[int, typer.Option("--port", help="API port on 127.0.0.1.")] = 3000,
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="EVE_DATA_DIR",
                                           show_default="$XDG_DATA_HOME/eve or ~/.local/share/eve",
                                           help="Embedded PostgreSQL data, JWT secret, role passwords and "
                                                "workspaces.")] = DEFAULT_DATA_DIR,
    pg_port: Annotated[int, typer.Option("--pg-port", help="Port of the embedded PostgreSQL on 127.0.0.1.")] = 54320,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="DATABASE_URL",
        help="Use this PostgreSQL instead of the embedded one (a superuser or owner DSN: eve up migrates "
             "and creates the API's and workers' login roles with it).", show_envvar=False)] = None,
    sandbox: Annotated[str, typer.Option("--sandbox", envvar="EVE_SANDBOX",
                                         help="How workers isolate agents: auto (bwrap if it works, else a "
                                              "separate uid), bwrap, uid, or none.")] = "auto",
    agent_network: Annotated[str, typer.Option(
        "--agent-network", envvar="EVE_AGENT_NETWORK",
        help="Agents' network: auto (filtered wherever bwrap can), filtered (each agent reaches only its "
             "provider, the API, git hosts and EVE_AGENT_NET_ALLOW), or open (the host's network). See "
             "docs/security.md.")] = "auto",
    workspace_root: Annotated[Path | None, typer.Option(
        "--workspace-root", envvar="EVE_WORKSPACE_ROOT", show_default="DATA_DIR/workspaces; in uid mode "
        "/var/lib/eve-horizon/<id of DATA_DIR>/workspaces",
        help="Where the workers keep the agents' workspaces. In uid mode every directory above it must "
             "let other users pass through (agents run as their own uids).")] = None,
    max_restarts: Annotated[int, typer.Option("--max-restarts", envvar="EVE_UP_MAX_RESTARTS", min=1,
                                              help="Give up when one component (or PostgreSQL) exits more "
                                                   "than this often within --restart-window.")] = 5,
    restart_window: Annotated[float, typer.Option("--restart-window", envvar="EVE_UP_RESTART_WINDOW", min=1,
                                                  help="Seconds over which exits are counted.")] = 60.0,
    api_processes: Annotated[int, typer.Option("--api-processes", envvar="EVE_UP_API_PROCESSES", min=0,
                                               help="API processes sharing the port (SO_REUSEPORT), each "
                                                    "supervised on its own. 0: one per two cores, at least "
                                                    "one.")] = 0,
    agent_memory_mb: Annotated[int | None, typer.Option(
        "--agent-memory-mb", show_default="4096", help="Memory per agent, its tree and /tmp (MiB; 0: none).")] = None,
    agent_pids: Annotated[int | None, typer.Option("--agent-pids", show_default="512",
                                                   help="Processes per agent (0: none).")] = None,
    agent_tmp_mb: Annotated[int | None, typer.Option("--agent-tmp-mb", show_default="1024",
                                                     help="An agent's private /tmp (MiB).")] = None,
    agent_disk_mb: Annotated[int | None, typer.Option("--agent-disk-mb", show_default="10240",
                                                      help="An agent's workspace (MiB; 0: none).")] = None,
    agent_max_minutes: Annotated[float | None, typer.Option(
        "--agent-max-minutes", show_default="120",
        help="Wall time per agent turn; the API refuses a longer timeoutMs (0: none).")] = None,
    agent_idle_minutes: Annotated[float | None, typer.Option(
        "--agent-idle-minutes", show_default="20", help="Stop an agent silent this long (0: never).")] = None,
) -> None:
    """Start the whole platform: PostgreSQL (embedded unless DATABASE_URL is set), migrations,
    first-run bootstrap (org 'default', operator admin@localhost, an API key printed once and
    saved to the CLI config), the API and the workers. Ctrl+C stops everything it started.

    Least privilege: only eve up itself holds the superuser DSN. The API logs in as
    eve_api_login (member of eve_api only, under row-level security) and the workers as
    eve_worker_login (service_role, no CREATE); their passwords are generated into
    DATA_DIR/secrets/ (0600). Workers never see JWT_SECRET.

    API processes: one per two cores by default (--api-processes), sharing the port.

    Supervision: workers are named TYPE-1, TYPE-2, … (their --id); a component that exits
    is started again at once, and so is the embedded PostgreSQL (its crash recovery replays
    the WAL; the API answers 503 meanwhile). A worker an operator drained (eve workers drain
    ID) stays stopped until eve up starts again. eve up gives up, with the reason, only when
    something exits more than --max-restarts times within --restart-window seconds.
    """
    from eve import admin, config, migrate
    from eve.db import connect, describe
    from eve.pg import EmbeddedPostgres

    if sandbox not in ("auto", "bwrap", "uid", "none"):
        raise ValidationError(f"--sandbox {sandbox!r}: use auto, bwrap, uid or none")
    if agent_network not in ("auto", "filtered", "open"):
        raise ValidationError(f"--agent-network {agent_network!r}: use auto, filtered or open")
    counts = parse_workers(workers)
    limit_env = agent_limit_env(memory_mb=agent_memory_mb, pids=agent_pids, tmp_mb=agent_tmp_mb,
                                disk_mb=agent_disk_mb, max_minutes=agent_max_minutes, idle_minutes=agent_idle_minutes)
    data_dir = data_dir.expanduser().resolve()
    out = console
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pg: EmbeddedPostgres | None = None
    components: list[Component] = []
    output = Output()
    crashes = CrashWindow(max_restarts, restart_window)
    try:
        if database_url:
            dsn = database_url
            out.print(f"database   {describe(dsn)} (DATABASE_URL)")
        else:
            # after a crash, sync the data dir with one syncfs() rather than an fsync per file:
            # seconds less before WAL replay starts (Linux only)
            pg = EmbeddedPostgres(data_dir, port=pg_port, settings={"recovery_init_sync_method": "syncfs"}
                                  if sys.platform == "linux" else None)
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
        dsns = run(_least_privilege(dsn, data_dir))
        if isinstance(dsns, str):
            out.print(f"[yellow]roles      could not create login roles ({dsns}); the API and workers share "
                      f"the DSN given[/yellow]")
            dsns = (dsn, dsn)
        else:
            out.print(f"roles      API as {describe(dsns[0])}, workers as {describe(dsns[1])} "
                      f"(passwords in {data_dir / 'secrets'})")
        api_env, worker_env = child_envs(dsns, _jwt_secret(data_dir), api_url)
        from eve.orgsecrets import key_env  # per-org secrets (#19): a key file in the data dir, API and workers only
        api_env, worker_env = key_env(data_dir, api_env), key_env(data_dir, worker_env)
        # the agents' limits (#28): the workers hold them, the API refuses a timeoutMs over the wall-time cap
        api_env, worker_env = {**api_env, **limit_env}, {**worker_env, **limit_env}
        n_api = api_processes or default_api_processes()
        apis = [Component("api" if i == 1 else f"api-{i}", api_command(port, n_api), api_env, api=True)
                for i in range(1, n_api + 1)]
        api = apis[0]
        components.extend(apis)
        ws_root = workspace_root.expanduser().resolve() if workspace_root else default_workspace_root(data_dir, sandbox)
        out.print(f"workspaces {ws_root}")
        index = 0
        for wtype, n in counts.items():
            for i in range(n):
                components.append(Component(f"{wtype}-{i + 1}",
                                            worker_command(wtype, i + 1, index, data_dir, sandbox, agent_network,
                                                           ws_root),
                                            worker_env))
                index += 1
        components += [Component(*c) for c in slack.up_components(dsn, dsns, worker_env, _jwt_secret(data_dir))]
        for comp in components:
            comp.start(output)
        if not _ready(f"{api_url}/health?ready=1", 60, api):
            out.print(f"[red]the API did not become ready on {api_url}[/red] — see its lines above")
            raise typer.Exit(1)
        for a in apis:  # they share the port: one answering is as far as we can tell them apart
            a.state = "ready"
        out.print(f"ready: API {api_url}  database {describe(dsn)} ({password_hint(pg)})")
        output.start_panel(components, pg)
        out.print("try:   eve status   ·   eve request create --worker-type general --prompt 'Echo hello world' "
                  "--wait   ·   eve ui   (Ctrl+C stops everything)")
        pg_exits: deque[float] = deque()
        while not stop.wait(SUPERVISOR_TICK_S):
            now = time.monotonic()
            for comp in components:
                if comp.proc is None or comp.proc.poll() is None or comp.drained:
                    continue
                if comp.restart_at is None and not comp.api and drained(dsn, comp.name):
                    comp.drained = True
                    comp.state = "drained"
                    output.line(f"{comp.name} drained by an operator and exited ({comp.proc.returncode}); not "
                                "restarting it: it stays stopped until eve up starts again")
                    continue
                if comp.restart_at is None:
                    give_up, delay = crashes.record(comp.exits, now)
                    if give_up:
                        output.line(f"{comp.name} exited {len(comp.exits)} times within {restart_window:.0f}s "
                                    f"(last exit code {comp.proc.returncode}); giving up, stopping everything")
                        raise typer.Exit(1)
                    comp.restart_at = now + delay
                    comp.state = f"exited ({comp.proc.returncode})"
                    output.line(f"{comp.name} exited ({comp.proc.returncode}); restarting"
                                + (f" in {delay:.1f}s" if delay else "") + f" (restart {comp.restarts + 1})")
                if now >= comp.restart_at and not stop.is_set():
                    comp.restarts += 1
                    comp.start(output)
            if pg is not None and pg.running_pid() is None and not stop.is_set():
                give_up, _ = crashes.record(pg_exits, now)
                if give_up:
                    out.print(f"[red]embedded PostgreSQL exited {len(pg_exits)} times within "
                              f"{restart_window:.0f}s; giving up. Its log: {pg.log_file}[/red]")
                    raise typer.Exit(1)
                output.line("postgresql     | exited; restarting it now (crash recovery replays the WAL; "
                            "the API answers 503 until it is back)")
                began = time.monotonic()
                output.pg_restarts += 1
                try:
                    pg.recover(timeout=60, on_retry=lambda why: output.line(f"postgresql     | not up yet: {why}"))
                except Exception as exc:  # noqa: BLE001 - any failure to come back is fatal, said plainly
                    out.print(f"[red]embedded PostgreSQL did not come back: {exc}. Its log: {pg.log_file}[/red]")
                    raise typer.Exit(1) from None
                output.line(f"postgresql     | back (pid {pg.running_pid()}) after "
                            f"{time.monotonic() - began:.1f}s")
    finally:
        output.stop_panel()
        if components:
            out.print("stopping: workers (draining), then the API, then PostgreSQL…")
        for comp in [c for c in components if not c.api]:
            threading.Thread(target=comp.stop, args=(40,), daemon=True).start()
        for comp in [c for c in components if not c.api]:
            if comp.proc is not None:
                try:
                    comp.proc.wait(45)
                except subprocess.TimeoutExpired:
                    comp.stop(1)
        for comp in [c for c in components if c.api]:
            comp.stop(15)
        if pg is not None:
            pg.stop()
        out.print("stopped")
