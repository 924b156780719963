"""`eve up` as a subprocess for tests: its merged output, its children by name, stop by PID."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from eve.pg import free_port, port_in_use, postmaster_pid
from tests.support.waiting import wait_for


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return {}
    return dict(item.partition("=")[::2] for item in raw.split("\0") if item)


def listens_on(pid: int, port: int) -> bool:
    """Whether `pid` holds a TCP socket listening on `port` (IPv4 or IPv6): with SO_REUSEPORT
    the kernel hands connections only to listening sockets, so this is "it takes its share"."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(f"socket:[{f[9]}]")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class UpProcess:
    proc: subprocess.Popen[str]
    data_dir: Path
    port: int
    pg_port: int
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def diagnosis(self) -> str:
        """eve up's own lines (not the children's JSON) and the end of PostgreSQL's log."""
        own = [x for x in self.lines if "| " not in x[:17] or x.startswith("postgresql")]
        log = self.data_dir / "postgres.log"
        tail = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
        return "\n".join(["-- eve up:", *own[-40:], "-- postgres.log:", *tail])

    def wait_ready(self, timeout: float = 120) -> None:
        wait_for(lambda: any(x.startswith("ready: API") for x in self.lines) or self.proc.poll() is not None,
                 timeout, "eve up to print 'ready: API'")
        assert self.proc.poll() is None, f"eve up exited ({self.proc.returncode}):\n{self.output()}"

    def children(self) -> dict[str, int]:
        """Live children by component name: 'api', 'general-1', …"""
        out: dict[str, int] = {}
        for pid in all_pids():
            if not alive(pid):
                continue
            args = cmdline(pid)
            if "eve.daemons.api" in args and str(self.port) in args:
                out["api"] = pid
            elif "eve.daemons.worker" in args and str(self.data_dir / "workspaces") in args and "--id" in args:
                out[args[args.index("--id") + 1]] = pid
        return out

    def postmaster(self) -> int | None:
        return postmaster_pid(self.data_dir / "pgdata")

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", params={"ready": 1}, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def eve(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eve.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def stop(self, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.postmaster() is None:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)
        return self.proc.returncode


def stable_port() -> int:
    """A free port below the ephemeral range, for a server that restarts while clients
    keep reconnecting: an ephemeral port can be taken meanwhile by one of those clients'
    own outgoing sockets (even a TCP self-connect), and the server then cannot bind."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        if not port_in_use(port):
            return port
    return free_port()


def start_up(tmp: Path, variant_bin: Path | None, *args: str, env: dict[str, str] | None = None,
             base_env: dict[str, str] | None = None) -> UpProcess:
    """`eve up` on free ports with its CLI config under tmp and its data dir in a fresh
    /tmp/eve-up-* (removed by stop()): under root the embedded PostgreSQL runs as an
    unprivileged user, and pytest resets /tmp/pytest-of-root to 0700 whenever another
    session starts, which would lock that user out of a data dir below it.

    `base_env` replaces this process's environment (as `env -i ...` would)."""
    data = Path(tempfile.mkdtemp(prefix="eve-up-")) / "data"
    port, pg_port = free_port(), stable_port()
    source = os.environ if base_env is None else base_env
    child_env = {k: v for k, v in source.items() if k != "DATABASE_URL" and not k.startswith("EVE_")}
    child_env.update({"XDG_CONFIG_HOME": str(tmp / "cfg"), "NO_COLOR": "1", "COLUMNS": "200"})
    if variant_bin is not None:
        child_env["PATH"] = f"{variant_bin}{os.pathsep}{child_env['PATH']}"
    child_env.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "eve.cli", "up", "--data-dir", str(data), "--port", str(port),
                             "--pg-port", str(pg_port), *args], env=child_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    up = UpProcess(proc=proc, data_dir=data, port=port, pg_port=pg_port, env=child_env)
    threading.Thread(target=up._pump, daemon=True).start()
    return up


def measure(fn, timeout: float, what: str) -> float:
    """Seconds until fn() is truthy (a wait with a deadline that also reports how long it took)."""
    began = time.monotonic()
    wait_for(fn, timeout, what)
    return time.monotonic() - began


def wait_children(up: UpProcess, names: set[str], timeout: float = 30) -> dict[str, int]:
    """The children once exactly `names` are alive."""
    found: dict[str, dict[str, int]] = {}

    def check() -> bool:
        found["kids"] = up.children()
        return set(found["kids"]) == names

    wait_for(check, timeout, f"eve up's children {sorted(names)}")
    return found["kids"]
