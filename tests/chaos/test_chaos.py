"""Chaos: a steady stream of requests through the real Claude Code CLI while, at random,
a worker is killed with SIGKILL, a worker gets SIGTERM, PostgreSQL is killed and restarted,
or the API is killed with SIGKILL — under one `eve up` with three workers.

After EVE_CHAOS_ROUNDS rounds (5 in the default test run, 100 in `make chaos`):

* every request has exactly one result, and none is stuck;
* no agent process is left over;
* no request ever had two live agents at once (per attempt spawn/exit times, from the
  `spawned` events and from the processes themselves: tests/chaos/monitor.py);

and a table of recovery times (kill → the request running again, or the component back)
is printed. Deadlines are generous so the suite passes whatever the lease is; the table
reports what was measured. EVE_CHAOS_SEED replays a run; EVE_CHAOS_LEASE_SECONDS sets the
queue lease of the platform under test (default 15).
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from eve.daemons.worker.daemon import WorkerConfig

from eve.pg import SUPERUSER
from tests.chaos.monitor import AgentMonitor
from tests.support.upproc import UpProcess, start_up, wait_children
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow]

ROUNDS = int(os.environ.get("EVE_CHAOS_ROUNDS") or 5)
SEED = int(os.environ.get("EVE_CHAOS_SEED") or random.SystemRandom().randrange(1 << 30))
LEASE_S = float(os.environ.get("EVE_CHAOS_LEASE_SECONDS") or 15)
WORKERS = ("general-1", "general-2", "general-3")
ACTIONS = ("kill -9 worker", "SIGTERM worker", "restart PostgreSQL", "kill -9 API")
# generous: a lease to run out, a reaper pass, a slow agent start on a busy 2-core machine
RECOVERY_DEADLINE_S = LEASE_S * 2 + 90
FINAL = ("completed", "failed", "cancelled")
PROMPT = "[[bash: sleep 1; echo chaos-{n}]]"
# Until the worker has its agent sandbox (issue #11), a kill -9'd worker's agent outlives it.
SANDBOXED = "sandbox" in {f.name for f in dataclasses.fields(WorkerConfig)}


@dataclass
class Platform:
    up: UpProcess
    dsn: str
    api_key: str
    token: str = ""
    submitted: int = 0
    errors: list[str] = field(default_factory=list)

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Retried across a PostgreSQL restart."""
        deadline = time.monotonic() + 120
        while True:
            try:
                with self.db() as conn:
                    return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def submit(self, n: int) -> bool:
        try:
            if not self.token:
                r = httpx.post(f"{self.up.url}/auth/token", json={"apiKey": self.api_key}, timeout=10)
                if r.status_code != 200:
                    return False
                self.token = r.json()["token"]
            r = httpx.post(f"{self.up.url}/requests", json={"workerType": "general", "prompt": PROMPT.format(n=n)},
                           headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        except httpx.HTTPError:
            return False
        if r.status_code == 201:
            return True
        if r.status_code >= 500 or r.status_code == 401:
            return False
        self.errors.append(f"POST /requests -> {r.status_code} {r.text[:200]}")
        return False


class Submitter(threading.Thread):
    """A steady stream: keeps `backlog` requests unfinished, retrying while the API is down."""

    def __init__(self, platform: Platform, backlog: int = 5) -> None:
        super().__init__(daemon=True, name="submitter")
        self.platform = platform
        self.backlog = backlog
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            try:
                with self.platform.db() as conn:
                    open_ = conn.execute("SELECT count(*) FROM eve.orchestration_requests "
                                         "WHERE status NOT IN ('completed', 'failed', 'cancelled')").fetchone()[0]
            except psycopg.OperationalError:
                self.halt.wait(0.2)
                continue
            if open_ < self.backlog and self.platform.submit(n):
                n += 1
                self.platform.submitted = n
            else:
                self.halt.wait(0.2)


def _held_by(platform: Platform, worker: str) -> list[str]:
    rows = platform.query("SELECT id::text FROM eve.orchestration_requests WHERE claimed_by = %s "
                          "AND status IN ('claimed', 'processing')", (worker,))
    return [r[0] for r in rows]


def _spawned_after(platform: Platform, rid: str, t: float) -> float | None:
    rows = platform.query("SELECT min(extract(epoch FROM at))::float8 FROM eve.request_events WHERE request_id = %s "
                          "AND kind = 'spawned' AND at > to_timestamp(%s)", (rid, t))
    return rows[0][0] if rows and rows[0][0] is not None else None


def _finished(platform: Platform, rid: str) -> bool:
    rows = platform.query("SELECT status FROM eve.orchestration_requests WHERE id = %s", (rid,))
    return bool(rows) and rows[0][0] in FINAL


def _busy_worker(platform: Platform, rng: random.Random) -> tuple[str, list[str]]:
    """A worker running a request (waits a little for one), else any worker."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        busy = [(w, held) for w in WORKERS if (held := _held_by(platform, w))]
        if busy:
            return rng.choice(busy)
        time.sleep(0.2)
    return rng.choice(WORKERS), []


def _round(platform: Platform, action: str, rng: random.Random) -> tuple[float, str]:
    """Do `action`; wait for recovery; (seconds from the kill to recovery, what recovered)."""
    up = platform.up
    if action in ("kill -9 worker", "SIGTERM worker"):
        worker, held = _busy_worker(platform, rng)
        pid = wait_children(up, {"api", *WORKERS}, 60)[worker]
        t0 = time.time()
        os.kill(pid, signal.SIGKILL if action == "kill -9 worker" else signal.SIGTERM)
        if held and action == "kill -9 worker":
            rid = held[0]
            wait_for(lambda: _spawned_after(platform, rid, t0) or _finished(platform, rid), RECOVERY_DEADLINE_S,
                     f"request {rid} to run again after {action} of {worker}", interval=0.1)
            again = _spawned_after(platform, rid, t0)
            if again is not None:
                return again - t0, "request re-run"
        wait_for(lambda: up.children().get(worker) not in (None, pid), RECOVERY_DEADLINE_S,
                 f"{worker} to be restarted", interval=0.05)
        return time.time() - t0, "worker back"
    if action == "restart PostgreSQL":
        pid = up.postmaster()
        assert pid is not None, up.output()[-3000:]
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: up.postmaster() not in (None, pid) and up.ready(), RECOVERY_DEADLINE_S,
                 "PostgreSQL and the API to be back", interval=0.05)
        return time.time() - t0, "API ready"
    pid = wait_children(up, {"api", *WORKERS}, 60)["api"]
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: up.children().get("api") not in (None, pid) and up.ready(), RECOVERY_DEADLINE_S,
             "the API to be back", interval=0.05)
    return time.time() - t0, "API ready"


def _describe(overlaps: list) -> str:
    return "; ".join(f"{rid}: pid {a.key} spawned {a.start:.2f} last seen {a.end:.2f}, pid {b.key} spawned {b.start:.2f}"
                     for rid, a, b in overlaps)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def recovery_table(times: dict[str, list[tuple[float, str]]]) -> str:
    lines = [f"{'action':<20} {'what recovered':<16} {'n':>4} {'p50 s':>7} {'p99 s':>7} {'max s':>7}"]
    for action in ACTIONS:
        by_what: dict[str, list[float]] = {}
        for seconds, what in times.get(action, []):
            by_what.setdefault(what, []).append(seconds)
        for what, values in sorted(by_what.items()):
            lines.append(f"{action:<20} {what:<16} {len(values):>4} {statistics.median(values):>7.2f} "
                         f"{_pct(values, 0.99):>7.2f} {max(values):>7.2f}")
    return "\n".join(lines)


def _api_key(up: UpProcess) -> str:
    return next(x for x in up.lines if x.startswith("API key ")).split()[-1]


@pytest.mark.timeout(600 + ROUNDS * (RECOVERY_DEADLINE_S + 30))
def test_chaos(tmp_path: Path, variant_bin: Path):
    rng = random.Random(SEED)
    print(f"\nchaos: {ROUNDS} rounds, seed {SEED} (EVE_CHAOS_SEED={SEED} replays the choices), lease {LEASE_S:g}s")
    up = start_up(tmp_path, variant_bin, "--workers", "general=3", "--max-restarts", "100000",
                  env={"EVE_LEASE_SECONDS": str(LEASE_S), "EVE_WORKER_GRACE": "20",
                       "EVE_SANDBOX": os.environ.get("EVE_CHAOS_SANDBOX", "auto")})
    monitor = submitter = None
    try:
        up.wait_ready()
        password = (up.data_dir / "superuser.password").read_text().strip()
        dsn = f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{up.pg_port}/postgres"
        platform = Platform(up=up, dsn=dsn, api_key=_api_key(up))
        monitor = AgentMonitor(dsn, up.data_dir / "workspaces")
        monitor.start()
        submitter = Submitter(platform)
        submitter.start()
        wait_for(lambda: platform.query("SELECT count(*) FROM eve.request_events WHERE kind = 'spawned'")[0][0] >= 3,
                 180, "the first agents to start")
        times: dict[str, list[tuple[float, str]]] = {}
        for i in range(ROUNDS):
            action = rng.choice(ACTIONS)
            try:
                seconds, what = _round(platform, action, rng)
            except AssertionError as exc:
                raise AssertionError(f"round {i + 1} ({action}): {exc}\n{up.diagnosis()}") from None
            times.setdefault(action, []).append((seconds, what))
            print(f"round {i + 1:>3}/{ROUNDS}: {action:<20} → {what} after {seconds:.2f}s")
        submitter.halt.set()
        submitter.join(30)

        # every request reaches a final state: none stuck
        def settled() -> bool:
            return platform.query("SELECT count(*) FROM eve.orchestration_requests "
                                  "WHERE status NOT IN ('completed', 'failed', 'cancelled')")[0][0] == 0

        wait_for(settled, RECOVERY_DEADLINE_S + 120, "every request to finish (none stuck)", interval=0.5)
        # exactly one result per request
        rows = platform.query("SELECT r.id::text, r.status, count(x.request_id) FROM eve.orchestration_requests r "
                              "LEFT JOIN eve.orchestration_results x ON x.request_id = r.id GROUP BY r.id, r.status")
        assert rows, "no requests were submitted"
        wrong = [(rid, status, n) for rid, status, n in rows if n != 1]
        assert not wrong, f"requests without exactly one result: {wrong}"
        statuses: dict[str, int] = {}
        for _, status, _ in rows:
            statuses[status] = statuses.get(status, 0) + 1
        # no agent left over, and never two at once for one request
        wait_for(lambda: not monitor.live(), 60, "every agent process to be gone")
        monitor.tick()
        overlaps = monitor.overlaps()
        if overlaps:
            rid = overlaps[0][0]
            print(f"\nevents of {rid} (overlapping attempts):")
            for kind, at, data in platform.query(
                    "SELECT kind, extract(epoch FROM at)::float8, left(data::text, 160) FROM eve.request_events "
                    "WHERE request_id = %s AND kind NOT IN ('stderr', 'assistant', 'tool_use', 'tool_result') "
                    "ORDER BY id", (rid,)):
                print(f"  {at:.2f} {kind:<12} {data}")
        if (monitor.violations or overlaps) and not SANDBOXED:
            pytest.xfail(f"two live agents for one request ({len(overlaps)} overlapping attempts, e.g. "
                         f"{_describe(overlaps[:2])}): this build's worker has no agent sandbox, so a worker killed "
                         "with SIGKILL leaves its agent running (issue #11)")
        assert not monitor.violations, f"two live agents for one request: {monitor.violations[:5]}"
        assert not overlaps, f"attempts overlapping in time: {_describe(overlaps[:5])}"
        attempts = monitor.attempts()
        reruns = sum(len(a) - 1 for a in attempts.values())
        print(f"\n{len(rows)} requests ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}), "
              f"{sum(len(a) for a in attempts.values())} agent runs, {reruns} re-runs, 0 overlaps, "
              f"0 agents left over")
        print(recovery_table(times))
        assert not platform.errors, platform.errors[:5]
        assert statuses.get("completed", 0) > 0
    finally:
        if submitter is not None:
            submitter.halt.set()
        code = up.stop()
        if monitor is not None:
            wait_for(lambda: not monitor.live(), 60, "no agent process after eve up stopped")
            monitor.stop()
    assert code == 0, up.output()[-5000:]
