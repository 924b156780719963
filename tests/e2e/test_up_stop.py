"""`eve up` stopped by Ctrl+C with a request running: workers drain, then the API, then PostgreSQL.

Ctrl+C is a SIGINT to the terminal's foreground process group, so the test starts `eve up`
in a session of its own and signals the group. Its output is read to the end (by a
thread, with deadlines), and the order of the lines is the evidence: the running
request finishes and the worker stops before the API shuts down, the API never loses the
database (PostgreSQL stops last), and the result is in the database afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from eve.pg import EmbeddedPostgres, free_port
from tests.support.waiting import LineReader, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUNNING = '[[slow: 0.3]] [[bash: echo "drained"]]'  # a few seconds of streaming per turn


def first(lines: list[str], predicate) -> int:  # noqa: ANN001
    for i, line in enumerate(lines):
        if predicate(line):
            return i
    raise AssertionError("no such line in:\n" + "\n".join(ln[:200] for ln in lines))


def test_ctrl_c_drains_the_running_request_then_stops_api_then_postgres(tmp_path: Path, variant_bin: Path):
    # not under tmp_path: pytest resets /tmp/pytest-of-root to 0700 when another session starts,
    # locking out the unprivileged user the embedded PostgreSQL runs as under root
    data = Path(tempfile.mkdtemp(prefix="eve-up-")) / "data"
    port, pg_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("EVE_")}
    env.update({"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "NO_COLOR": "1", "COLUMNS": "500",
                "PATH": f"{variant_bin}{os.pathsep}{env['PATH']}"})
    up = subprocess.Popen([sys.executable, "-m", "eve.cli", "up", "--data-dir", str(data), "--port", str(port),
                           "--pg-port", str(pg_port), "--workers", "general=1"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    out = LineReader(up.stdout)
    try:
        out.until(lambda ln: ln.startswith("ready: API"), 120, "eve up to be ready")
        # eve up prints where the superuser's password lives, not the password: read it from there
        dsn = EmbeddedPostgres(data, port=pg_port).dsn()
        r = subprocess.run([sys.executable, "-m", "eve.cli", "request", "create", "-t", "general", "--prompt",
                            RUNNING, "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        rid = json.loads(r.stdout)["id"]
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as c:
            wait_for(lambda: c.execute("SELECT 1 FROM eve.request_events WHERE request_id = %s AND kind = 'spawned'",
                                       (rid,)).fetchone(), 60, "the agent to start")
            assert c.execute("SELECT status FROM eve.orchestration_requests WHERE id = %s",
                             (rid,)).fetchone()["status"] == "processing"
        os.killpg(up.pid, signal.SIGINT)  # what Ctrl+C in the terminal does
        text = out.rest(180)
        assert up.wait(30) == 0, text
    finally:
        if up.poll() is None:  # its components run in sessions of their own: stop them by PID first
            for pid in _children(up.pid):
                os.kill(pid, signal.SIGKILL)
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
    lines = out.lines
    worker = "general-1"  # the component's prefix and the worker's id under eve up

    def at(what: str, predicate) -> int:  # noqa: ANN001
        try:
            return first(lines, predicate)
        except AssertionError:
            raise AssertionError(f"no line for {what} in:\n{text}") from None

    drain = at("the drain", lambda ln: ln.startswith(worker) and "waiting for running requests" in ln)
    finished = at("the result", lambda ln: ln.startswith(worker) and "finished: success" in ln)
    worker_gone = at("the worker's stop", lambda ln: ln.startswith(worker) and f'"worker {worker} stopped"' in ln)
    api_down = at("the API's shutdown", lambda ln: ln.startswith("api") and "Shutting down" in ln)
    last = at("eve up's last word", lambda ln: ln.strip() == "stopped")
    assert drain < finished < worker_gone < api_down < last, text
    assert "event listener lost the database" not in text and "database unavailable" not in text, text
    assert "Traceback" not in text
    wait_for(lambda: not any("postgres" in _cmdline(p) and str(data) in _cmdline(p) for p in _pids()), 30,
             "PostgreSQL to exit")
    # the drained request's result was written while PostgreSQL was still up
    pg = EmbeddedPostgres(data, port=pg_port, guard=False)
    try:
        dsn2 = pg.start()
        with psycopg.connect(dsn2, row_factory=dict_row) as c:
            row = c.execute("SELECT status, summary FROM eve.orchestration_results WHERE request_id = %s",
                            (rid,)).fetchone()
        assert row is not None and row["status"] == "success" and "drained" in row["summary"], row
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(data.parent, ignore_errors=True)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _children(pid: int) -> list[int]:
    out = []
    for p in _pids():
        try:
            if int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(p)
        except (OSError, ValueError, IndexError):
            pass
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
