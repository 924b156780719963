"""`eve up` as an operator runs it: least privilege per child, and supervision under kill -9.

Each test starts a real `eve up` (embedded PostgreSQL, API, workers, the real Claude Code
CLI against the fake Messages API), breaks something the hard way and waits, with a
deadline, for the platform to heal. Measured times are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eve.roles import API_LOGIN, WORKER_LOGIN, secret_file
from tests.support.upproc import (
    UpProcess,
    all_pids,
    alive,
    cmdline,
    listens_on,
    environ,
    measure,
    start_up,
    wait_children,
)
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SMOKE = 'Echo "smoke test passed" using the Bash tool'


def _smoke(up: UpProcess) -> None:
    r = up.eve("request", "create", "-t", "general", "--prompt", SMOKE, "--wait")
    assert r.returncode == 0 and "smoke test passed" in r.stdout, r.stdout + r.stderr + up.output()[-3000:]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, variant_bin: Path) -> Iterator[UpProcess]:
    """One `eve up` with two workers for the tests below; each leaves it healthy."""
    proc = start_up(tmp_path_factory.mktemp("up"), variant_bin, "--workers", "general=2", "--sandbox", "none")
    try:
        proc.wait_ready()
        yield proc
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


def test_each_child_gets_only_its_own_dsn_and_workers_are_named(up: UpProcess):
    kids = wait_children(up, {"api", "general-1", "general-2"})
    superuser_pw = (up.data_dir / "superuser.password").read_text().strip()
    api_env = environ(kids["api"])
    assert f"{API_LOGIN}:" in api_env["DATABASE_URL"] and api_env.get("JWT_SECRET")
    jwt = api_env["JWT_SECRET"]
    bases = set()
    for name in ("general-1", "general-2"):
        env, args = environ(kids[name]), cmdline(kids[name])
        assert f"{WORKER_LOGIN}:" in env["DATABASE_URL"]
        assert "JWT_SECRET" not in env
        assert args[args.index("--sandbox-hide") + 1] == str(up.data_dir)
        bases.add(args[args.index("--sandbox-uid-base") + 1])
    assert len(bases) == 2
    for pid in kids.values():
        blob = "\0".join(f"{k}={v}" for k, v in environ(pid).items())
        assert superuser_pw not in blob
    assert jwt not in "\0".join(f"{k}={v}" for k, v in environ(kids["general-1"]).items())
    for role in (API_LOGIN, WORKER_LOGIN):
        assert stat.S_IMODE(secret_file(up.data_dir, role).stat().st_mode) == 0o600
    _smoke(up)  # the API and a worker do their jobs on those roles
    workers = up.eve("workers")
    assert "general-1" in workers.stdout and "general-2" in workers.stdout, workers.stdout + workers.stderr
    assert "NETWORK" in workers.stdout  # --sandbox none: open, as every agent of these workers has it
    rows = json.loads(up.eve("workers", "--json").stdout)
    assert {(w["sandbox"], w["network"]) for w in rows} == {("none", "open")}, rows


def test_killed_worker_and_api_are_restarted_at_once(up: UpProcess):
    kids = wait_children(up, {"api", "general-1", "general-2"})
    old = kids["general-1"]
    os.kill(old, signal.SIGKILL)
    took = measure(lambda: up.children().get("general-1") not in (None, old), 20, "general-1 to be restarted")
    print(f"worker restarted {took:.2f}s after kill -9")
    old_api = kids["api"]
    os.kill(old_api, signal.SIGKILL)
    took = measure(lambda: up.children().get("api") not in (None, old_api) and up.ready(), 60,
                   "the API to be restarted and ready")
    print(f"API restarted and ready {took:.2f}s after kill -9")
    assert any("general-1 exited (-9); restarting" in x for x in up.lines), up.output()
    _smoke(up)


def test_killed_postgres_is_restarted_while_api_and_workers_keep_running(up: UpProcess):
    codes: Counter[int] = Counter()
    halt = threading.Event()

    def probe() -> None:  # what clients see meanwhile: 200 or 503, never a 500
        while not halt.is_set():
            try:
                codes[httpx.get(f"{up.url}/health", params={"ready": 1}, timeout=5).status_code] += 1
            except httpx.HTTPError:
                codes[0] += 1
            halt.wait(0.05)

    try:
        _smoke(up)
        kids = wait_children(up, {"api", "general-1", "general-2"})
        old_pg = up.postmaster()
        assert old_pg is not None
        t = threading.Thread(target=probe, daemon=True)
        t.start()
        os.kill(old_pg, signal.SIGKILL)
        took = measure(lambda: up.postmaster() not in (None, old_pg), 60, "PostgreSQL to be restarted")
        print(f"PostgreSQL restarted {took:.2f}s after kill -9")
        wait_for(up.ready, 60, "the API to be ready again")
        halt.set()
        t.join(10)
        assert up.children() == kids, "the API and worker must keep running through a PostgreSQL restart"
        assert set(codes) <= {200, 503}, codes
        _smoke(up)
        api_lines = [x for x in up.lines if x.startswith("api ")]
        assert not any("Traceback" in x for x in api_lines), "\n".join(api_lines)
        assert any("postgresql" in x and "back (pid" in x for x in up.lines), up.output()
    finally:
        halt.set()


def test_a_drained_worker_stays_stopped_and_eve_up_says_so(up: UpProcess):
    kids = wait_children(up, {"api", "general-1", "general-2"})
    r = up.eve("workers", "drain", "general-2")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: not alive(kids["general-2"]), 60, "the drained worker to exit")
    wait_for(lambda: any("general-2 drained by an operator" in x for x in up.lines), 10,
             "eve up to notice the drained worker")
    # the supervisor decided when it said so: no restart follows
    assert "general-2" not in up.children(), up.output()[-3000:]
    assert not any("general-2 exited" in x and "restarting" in x for x in up.lines), up.output()[-3000:]
    workers = up.eve("workers")
    line = next(x for x in workers.stdout.splitlines() if "general-2" in x)
    assert "stopped" in line, workers.stdout
    _smoke(up)  # general-1 still serves


def test_kill_9_of_eve_up_leaves_no_process_behind(tmp_path: Path, variant_bin: Path):
    """Its children (API, workers) and PostgreSQL all go when eve up itself is SIGKILLed (#29:
    an API process restarted by eve up used to outlive it)."""
    up = start_up(tmp_path, variant_bin, "--sandbox", "none")
    try:
        up.wait_ready()
        kids = wait_children(up, {"api", "general-1"})
        os.kill(kids["api"], signal.SIGKILL)  # a restarted child, as in the report
        kids = wait_for(lambda: (k := up.children()).get("api") not in (None, kids["api"]) and k, 60,
                        "the API to be restarted")
        pg = up.postmaster()
        assert pg is not None
        os.kill(up.proc.pid, signal.SIGKILL)
        up.proc.wait(10)
        left = [*kids.values(), pg]
        wait_for(lambda: not [p for p in left if alive(p)], 60, f"eve up's children {left} to be gone")
    finally:
        for pid in locals().get("left", []):  # on failure: nothing of this test stays running
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        up.stop()


def test_several_api_processes_share_the_port_and_are_restarted_one_by_one(tmp_path: Path):
    up = start_up(tmp_path, None, "--workers", "general=0", "--api-processes", "2")
    try:
        up.wait_ready()
        wait_for(lambda: len(_api_pids(up)) == 2, 30, "two API processes")
        first, second = sorted(_api_pids(up))
        assert all("--reuse-port" in cmdline(p) for p in (first, second))
        # `ready: API` means one of them answers; the survivor must be listening too before
        # the other dies, or nothing is there to answer (seen once in CI)
        wait_for(lambda: listens_on(first, up.port) and listens_on(second, up.port), 60,
                 "both API processes to listen on the port")
        os.kill(second, signal.SIGKILL)
        wait_for(lambda: not alive(second), 10, "the killed API process to be gone")
        assert up.ready()  # the other one still answers on the port
        wait_for(lambda: len(_api_pids(up)) == 2 and second not in _api_pids(up), 60,
                 "the killed API process to be restarted")
        assert any("api-2 exited (-9); restarting" in x or "api exited (-9); restarting" in x for x in up.lines), \
            up.output()[-3000:]
    finally:
        assert up.stop() == 0, up.output()[-3000:]


def _api_pids(up: UpProcess) -> list[int]:
    return [p for p in all_pids() if alive(p) and "eve.daemons.api" in cmdline(p) and str(up.port) in cmdline(p)]


def test_gives_up_with_the_reason_after_repeated_failures(tmp_path: Path):
    up = start_up(tmp_path, None, "--workers", "general=1", "--sandbox", "none", "--max-restarts", "1",
                  "--restart-window", "120")
    try:
        up.wait_ready()
        for n in range(2):
            pid = up.postmaster()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda n=n: sum("back (pid" in x for x in up.lines) > n or up.proc.poll() is not None, 60,
                     "PostgreSQL to come back or eve up to give up")
        assert up.proc.wait(90) == 1
        assert any("embedded PostgreSQL exited 2 times within 120s; giving up" in x for x in up.lines), up.output()
        wait_for(lambda: not any(alive(p) for p in up.children().values()), 30, "the children to be stopped")
        wait_for(lambda: up.postmaster() is None, 30, "PostgreSQL to be stopped")
    finally:
        up.stop()
