"""A real PgBouncer in transaction pooling, started from a generated config, stopped by PID.

Debian package `pgbouncer` (.ci/run installs it). PgBouncer refuses to run as root, so
under root it is started with `-u` as an unprivileged system user that owns its directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from eve.pg import free_port, port_in_use
from tests.support.waiting import wait_for

INSTALL = "apt-get update && apt-get install -y pgbouncer"


def pgbouncer_bin() -> str | None:
    return shutil.which("pgbouncer") or next((p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
                                              if os.access(p, os.X_OK)), None)


@dataclass
class PgBouncer:
    proc: subprocess.Popen[bytes]
    port: int
    dbname: str
    root: Path

    def dsn(self, user: str, password: str) -> str:
        from urllib.parse import quote

        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}/{self.dbname}"

    def log(self) -> str:
        return "".join((self.root / n).read_text(errors="replace") for n in ("stderr.log", "pgbouncer.log")
                       if (self.root / n).exists())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # SIGINT: safe shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def start_pgbouncer(server_dsn: str, users: dict[str, str], *, pool_size: int = 3) -> PgBouncer:
    """PgBouncer on 127.0.0.1 in front of `server_dsn`'s database, pool_mode=transaction.

    A small pool makes clients share server connections, so any session state that
    leaked across transactions (LISTEN, SET, prepared statements) would break loudly.
    """
    exe = pgbouncer_bin()
    assert exe is not None, INSTALL
    server = conninfo_to_dict(server_dsn)
    # its own directory under /tmp: pytest's are 0700 root, which the unprivileged user cannot enter
    root = Path(tempfile.mkdtemp(prefix="eve-pgbouncer-"))
    port = free_port()
    dbname = "eve_bounced"
    userlist = "".join(f'"{u}" "{p}"\n' for u, p in users.items())
    (root / "userlist.txt").write_text(userlist)
    (root / "pgbouncer.ini").write_text(f"""[databases]
{dbname} = host={server.get('host', '127.0.0.1')} port={server.get('port', '5432')} dbname={server['dbname']}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {root / 'userlist.txt'}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {root / 'pgbouncer.log'}
pidfile = {root / 'pgbouncer.pid'}
""")
    args = [exe, str(root / "pgbouncer.ini")]
    if os.geteuid() == 0:
        user = next(u for u in ("postgres", "nobody") if _exists(u))
        ent = pwd.getpwnam(user)
        for p in (root, *root.iterdir()):
            os.chown(p, ent.pw_uid, ent.pw_gid)
        os.chmod(root / "userlist.txt", 0o600)
        args[1:1] = ["-u", user]
    with open(root / "stderr.log", "wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    bouncer = PgBouncer(proc=proc, port=port, dbname=dbname, root=root)
    try:
        wait_for(lambda: port_in_use(port, "127.0.0.1") or proc.poll() is not None, 20, "PgBouncer to listen")
        if proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({proc.returncode}):\n{bouncer.log()}")
    except BaseException:
        bouncer.stop()
        raise
    return bouncer  # PgBouncer connects to the server on demand


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
