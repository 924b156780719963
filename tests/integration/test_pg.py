"""The embedded PostgreSQL: start/stop, clear errors, no orphans, PostgreSQL 15 compatibility."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from eve import migrate
from eve.errors import EmbeddedPostgresError
from eve.pg import EmbeddedPostgres, postmaster_pid
from tests.support.pgharness import FAST_SETTINGS
from tests.support.waiting import LineReader

pytestmark = pytest.mark.slow

PG15_BIN = Path("/usr/lib/postgresql/15/bin")


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path / "data", port=0, settings=FAST_SETTINGS)
    try:
        yield pg
    finally:
        pg.stop(mode="immediate")


def test_start_is_idempotent_and_stop_leaves_nothing_running(cluster: EmbeddedPostgres) -> None:
    dsn = cluster.start()
    pid = cluster.running_pid()
    assert pid is not None and pid_alive(pid)
    assert cluster.start() == dsn and cluster.running_pid() == pid
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SHOW server_version_num").fetchone()[0] >= "180000"
    cluster.stop()
    wait_until(lambda: not pid_alive(pid), 10, "postmaster to exit")
    assert cluster.running_pid() is None


def test_password_is_required_over_tcp(cluster: EmbeddedPostgres) -> None:
    cluster.start()
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://postgres:wrong@127.0.0.1:{cluster.port}/postgres", connect_timeout=5)
    assert (os.stat(cluster.password_file).st_mode & 0o777) == 0o600


def test_restart_keeps_data(cluster: EmbeddedPostgres) -> None:
    dsn = cluster.start()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept SELECT generate_series(1, 3)")
    cluster.stop()
    dsn = cluster.start()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT array_agg(x ORDER BY x) FROM kept").fetchone()[0] == [1, 2, 3]


def test_data_dir_in_use_is_a_clear_error(cluster: EmbeddedPostgres) -> None:
    cluster.start()
    other = EmbeddedPostgres(cluster.data_dir, port=0, guard=False)
    with pytest.raises(EmbeddedPostgresError, match="already in use by a running PostgreSQL"):
        other.start()


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        pg = EmbeddedPostgres(tmp_path / "d", port=port, guard=False)
        with pytest.raises(EmbeddedPostgresError, match=f"port {port} .* already in use"):
            pg.start()
        assert pg.running_pid() is None


def test_a_failed_initdb_says_why_not_only_how_it_cleaned_up(tmp_path: Path) -> None:
    """initdb's last lines are about removing what it made; the cause comes before them."""
    pg = EmbeddedPostgres(tmp_path / "d", guard=False)
    pg.pgdata.mkdir(parents=True)
    (pg.pgdata / "stray-file").write_text("not PostgreSQL's")
    with pytest.raises(EmbeddedPostgresError, match="exists but is not empty"):
        pg.start()


def test_killed_owner_does_not_leave_postgres_running(tmp_path: Path) -> None:
    """SIGKILL the process that started the cluster: the guard stops PostgreSQL."""
    data = tmp_path / "orphan"
    script = (
        "import sys; from eve.pg import EmbeddedPostgres\n"
        "pg = EmbeddedPostgres(sys.argv[1], port=0)\n"
        "pg.start(); print(pg.running_pid(), flush=True)\n"
        "sys.stdin.read()\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script, str(data)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        line = LineReader(owner.stdout).next(60, "the owner to print the postmaster's pid")
        pid = int((line or "").strip())
        assert pid_alive(pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        wait_until(lambda: not pid_alive(pid), 30, "the guard to stop the orphaned postmaster")
        assert postmaster_pid(data / "pgdata") is None
    finally:
        if owner.poll() is None:
            owner.kill()
        EmbeddedPostgres(data, guard=False).stop(mode="immediate")


@pytest.mark.skipif(not (PG15_BIN / "initdb").exists() and not os.environ.get("EVE_REQUIRE_PG15"),
                    reason="PostgreSQL 15 server binaries not installed (CI sets EVE_REQUIRE_PG15 and installs them)")
def test_schema_and_queue_work_on_postgresql_15(tmp_path: Path) -> None:
    """PostgreSQL 15 is the minimum: the migrations and the claim query must run on it."""
    assert (PG15_BIN / "initdb").exists(), f"EVE_REQUIRE_PG15 is set but {PG15_BIN}/initdb is missing"
    pg = EmbeddedPostgres(tmp_path / "pg15", port=0, settings=FAST_SETTINGS, bin_path=PG15_BIN)
    try:
        dsn = pg.start()
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith("15")
        asyncio.run(migrate.migrate(dsn))
        asyncio.run(_queue_round_trip(dsn))
    finally:
        pg.stop(mode="immediate")


async def _queue_round_trip(dsn: str) -> None:
    from psycopg.rows import dict_row

    from eve import queue
    from eve.models import Outcome
    from tests.support.tenants import make_tenant

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        t = await make_tenant(conn, "pg15")
        req = await queue.enqueue(conn, org_id=t.org_id, user_id=t.user_id, worker_type="general", prompt="hi")
        [c] = await queue.claim(conn, "general", "w")
        await queue.complete(conn, c, "w", Outcome(status="success"))
        assert (await queue.get_result(conn, req.id)).status == "success"
        assert [d.pending for d in await queue.queue_depth(conn)] == [0, 0, 0, 0]
