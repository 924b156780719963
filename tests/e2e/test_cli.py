"""The `eve` CLI as a person runs it, against a real API, worker, PostgreSQL and Claude Code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from eve.pg import free_port
from tests.support.apiserver import start_api
from tests.support.pgharness import PgCluster
from tests.support.tenants import make_tenant
from tests.support.waiting import LineReader, wait_for
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e
SMOKE = 'Echo "smoke test passed" using the Bash tool'


@pytest.fixture(scope="module")
def stack(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory, variant_bin: Path) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("cli")
    dsn = pg_cluster.create_database()

    async def tenant() -> Any:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as c:
            return await make_tenant(c, "cli-org")

    t = asyncio.run(tenant())
    api = start_api(dsn, tmp)
    worker = start_worker(dsn, tmp, path_prepend=variant_bin, slots=2)
    try:
        api.wait_ready()
        worker.wait_healthy()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVE_")}
        env.update({"XDG_CONFIG_HOME": str(tmp / "config"), "NO_COLOR": "1", "COLUMNS": "200"})
        yield {"env": env, "api": api, "tenant": t, "dsn": dsn, "tmp": tmp}
    finally:
        worker.stop()
        api.stop()
        pg_cluster.drop_database(dsn)


def eve(stack: dict, *args: str, env: dict | None = None, input: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_eve(stack, *args, env=env, input=input, timeout=timeout)


def run_eve(stack: dict, *args: str, env: dict | None = None, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eve.cli", *args], capture_output=True, text=True, input=input,
                          env={**stack["env"], **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def configured(stack: dict) -> dict:
    assert eve(stack, "config", "set", "api-url", stack["api"].url).returncode == 0
    r = eve(stack, "config", "set", "api-key", stack["tenant"].api_key)
    assert r.returncode == 0 and stack["tenant"].api_key not in r.stdout  # masked
    path = Path(stack["env"]["XDG_CONFIG_HOME"]) / "eve" / "config.toml"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return stack


def test_config_precedence(configured):
    s = configured
    assert eve(s, "config", "get", "api-url").stdout.strip() == s["api"].url
    assert eve(s, "config", "get", "api-url", env={"EVE_API_URL": "http://env:1"}).stdout.strip() == "http://env:1"
    listing = eve(s, "config", "list").stdout
    assert "config.toml" in listing and s["tenant"].api_key not in listing
    assert eve(s, "config", "get", "api-key", "--show-secret").stdout.strip() == s["tenant"].api_key
    r = eve(s, "--api-url", "http://127.0.0.1:1", "status", env={"EVE_API_URL": s["api"].url})
    assert r.returncode == 1 and "cannot reach API at http://127.0.0.1:1" in r.stderr  # the flag wins
    assert eve(s, "config", "set", "api-url", "ftp://x").returncode == 1


def test_status_and_queue(configured):
    r = eve(configured, "status")
    assert r.returncode == 0, r.stderr
    assert re.search(r"API\s+OK", r.stdout) and re.search(r"Database\s+OK", r.stdout)
    assert re.search(r"Workers \(general\)\s+1/1", r.stdout) and "Queue Depth:" in r.stdout
    assert re.search(r"general:\s+\d+ pending", r.stdout)
    st = json.loads(eve(configured, "status", "--json").stdout)
    assert st["api"] == "ok" and {w["workerType"] for w in st["workers"]} >= {"general"}
    q = json.loads(eve(configured, "queue", "--json").stdout)
    assert {i["workerType"] for i in q} == {"general", "code-review", "playwright", "data"}
    assert "WORKER TYPE" in eve(configured, "queue").stdout


def test_create_wait_logs_and_results(configured):
    r = eve(configured, "request", "create", "--worker-type", "general", "--prompt", SMOKE, "--wait")
    assert r.returncode == 0, r.stderr
    assert "success" in r.stdout and "smoke test passed" in r.stdout
    assert 'Tool call: Bash echo "smoke test passed"' in r.stderr  # live progress
    created = json.loads(eve(configured, "request", "create", "-t", "general", "--prompt", SMOKE, "--json",
                             "--context", '{"ticket": 7}', "--timeout", "2m").stdout)
    rid = created["id"]
    assert created["status"] == "pending" and created["config"] == {"timeoutMs": 120000}
    wait_for(lambda: json.loads(eve(configured, "request", "get", rid, "--json").stdout)["status"] == "completed",
             60, "the request to complete")
    got = json.loads(eve(configured, "request", "get", rid, "--json").stdout)
    assert got["context"] == {"ticket": 7} and got["result"]["status"] == "success"
    human = eve(configured, "request", "get", rid).stdout
    assert rid in human and "completed" in human and "attempts" in human
    listing = eve(configured, "request", "list", "--limit", "50").stdout
    assert rid in listing
    assert rid in [i["id"] for i in json.loads(eve(configured, "request", "list", "--json").stdout)["items"]]
    assert "smoke test passed" in eve(configured, "result", "output", rid).stdout
    assert json.loads(eve(configured, "result", "output", rid, "--json").stdout)["type"] == "result"
    res = json.loads(eve(configured, "result", "get", rid, "--json").stdout)
    assert res["status"] == "success" and res["tokensUsed"] > 0
    logs = eve(configured, "logs", "--request-id", rid).stdout.splitlines()
    stamp = r"^\[\d\d:\d\d:\d\d\] "
    for expected in (r"Claimed by worker-", r"Spawning mclaude variant", r"Loading skill: general",
                     r'Tool call: Bash echo "smoke test passed"', r"Execution complete"):
        assert any(re.match(stamp + expected, line) for line in logs), (expected, logs)
    assert json.loads(eve(configured, "request", "logs", rid, "--json").stdout)[0]["kind"] == "claimed"
    follow = eve(configured, "request", "logs", rid, "--follow")
    assert follow.returncode == 0 and "Execution complete" in follow.stdout


def test_failed_wait_exits_nonzero_and_replay(configured):
    r = eve(configured, "request", "create", "-t", "general", "--prompt", "[[api_error]]", "--wait")
    assert r.returncode == 1 and "api_error" in r.stdout and "provider" in r.stdout
    rid = json.loads(eve(configured, "request", "list", "--json", "--limit", "1").stdout)["items"][0]["id"]
    r = eve(configured, "replay", rid, "--wait", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["errorCode"] == "api_error"
    r = eve(configured, "replay", rid)
    assert r.returncode == 0 and f"replayed {rid} as" in r.stdout


def test_cancel(configured):
    rid = json.loads(eve(configured, "request", "create", "-t", "playwright", "--prompt", "x", "--json").stdout)["id"]
    r = eve(configured, "cancel", rid)
    assert r.returncode == 0 and f"cancelled {rid}" in r.stdout
    r = eve(configured, "cancel", rid)
    assert r.returncode == 1 and "already finished" in r.stderr


def test_workers_and_worker_logs(configured):
    rows = json.loads(eve(configured, "workers", "--json").stdout)
    assert [w["workerType"] for w in rows] == ["general"] and rows[0]["state"] in ("idle", "busy")
    assert rows[0]["id"] in eve(configured, "workers").stdout
    denied = eve(configured, "workers", "logs", rows[0]["id"])  # cli-org's user is a member
    assert denied.returncode == 1 and "operators" in denied.stderr and "Traceback" not in denied.stderr

    async def operator_key() -> str:
        async with await psycopg.AsyncConnection.connect(configured["dsn"], autocommit=True,
                                                         row_factory=dict_row) as c:
            return (await make_tenant(c, "cli-staff", operator=True)).api_key

    logs = eve(configured, "workers", "logs", rows[0]["id"], env={"EVE_API_KEY": asyncio.run(operator_key())})
    assert logs.returncode == 0 and "started" in logs.stdout, logs.stderr


def test_tail_sees_an_event_created_after_it_starts(configured):
    tail = subprocess.Popen([sys.executable, "-m", "eve.cli", "tail", "--json"], env=configured["env"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = LineReader(tail.stdout), LineReader(tail.stderr)
    try:
        assert "connected" in (err.next(30, "tail to connect") or "")
        rid = json.loads(eve(configured, "request", "create", "-t", "general", "--prompt", "[[text: hi]]",
                             "--json").stdout)["id"]
        seen: list[str] = []

        def is_result_of_rid(line: str) -> bool:
            ev = json.loads(line)
            if ev["requestId"] == rid:
                seen.append(ev["kind"])
            return ev["requestId"] == rid and ev["kind"] == "result"

        out.until(is_result_of_rid, 60, "the request's result event")
        assert seen[0] == "claimed" and seen[-1] == "result"
    finally:
        tail.send_signal(signal.SIGINT)
        try:
            tail.wait(10)
        except subprocess.TimeoutExpired:
            tail.kill()


def test_errors_are_one_line_with_exit_codes(configured, stack):
    port = free_port()
    results: list[subprocess.CompletedProcess[str]] = []

    def eve(*args: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
        results.append(run_eve(*args, **kw))
        return results[-1]

    r = eve(stack, "status", env={"EVE_API_URL": f"http://127.0.0.1:{port}"})
    assert r.returncode == 1 and r.stderr.strip() == (
        f"error: cannot reach API at http://127.0.0.1:{port} (connection refused) — is it running? "
        "try: eve status / eve up")
    r = eve(stack, "status", env={"EVE_API_KEY": "eve_00000000_" + "x" * 43})
    assert r.returncode == 1 and "eve config set api-key" in r.stderr
    r = eve(configured, "request", "get", "00000000-0000-0000-0000-000000000000")
    assert r.returncode == 1 and "request 00000000-0000-0000-0000-000000000000 not found" in r.stderr
    r = eve(configured, "request", "create", "-t", "general", "--prompt", "x", "--context", "[1]")
    assert r.returncode == 1 and "must be a JSON object" in r.stderr
    r = eve(configured, "request", "create", "-t", "nope", "--prompt", "x")
    assert r.returncode == 1 and "Invalid worker type: nope" in r.stderr
    r = eve(configured, "request", "create", "-t", "general")
    assert r.returncode == 1 and "a prompt is required" in r.stderr
    r = eve(configured, "request", "list", "--limit", "0")
    assert r.returncode == 2
    r = eve(configured, "no-such-command")
    assert r.returncode == 2
    assert len(results) == 8
    for res in results:  # every one of them, not only the last
        assert res.returncode != 0 and "Traceback" not in res.stderr + res.stdout, res.args


def test_prompt_from_stdin(configured):
    r = eve(configured, "request", "create", "-t", "general", "--prompt-file", "-", "--json", input="from stdin")
    assert r.returncode == 0 and json.loads(r.stdout)["prompt"] == "from stdin"


@pytest.mark.slow
def test_eve_up_serves_a_request_and_stops_cleanly(tmp_path, variant_bin):
    data = tmp_path / "data"
    port, pg_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",) and not k.startswith("EVE_")}
    env.update({"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "NO_COLOR": "1",
                "PATH": f"{variant_bin}{os.pathsep}{env['PATH']}"})
    up = subprocess.Popen([sys.executable, "-m", "eve.cli", "up", "--data-dir", str(data), "--port", str(port),
                           "--pg-port", str(pg_port), "--workers", "general=1"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = LineReader(up.stdout)  # read to the end by a thread: eve up never blocks on a full pipe
    try:
        out.until(lambda line: line.startswith("ready: API"), 90, "eve up to be ready")
        r = subprocess.run([sys.executable, "-m", "eve.cli", "request", "create", "-t", "general", "--prompt", SMOKE,
                            "--wait"], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "smoke test passed" in r.stdout, r.stdout + r.stderr
        pids = _children(up.pid)
        assert len(pids) >= 2  # the API and a worker
        up.send_signal(signal.SIGTERM)
        text = out.rest(120)
        assert up.wait(30) == 0, text
        assert text.rstrip().endswith("stopped") and "Traceback" not in text, text
        flat = text.replace("\n", "")  # rest() has all of it; rich wraps long lines at 80 columns
        assert str(data / "superuser.password") in flat  # where the password lives is said
        for name, secret in _data_dir_secrets(data).items():
            assert secret not in text and secret not in flat, f"eve up printed {name}"
    finally:
        if up.poll() is None:
            up.kill()
    wait_for(lambda: not any(_alive(p) for p in pids), 30, "children to exit")


def _data_dir_secrets(data: Path) -> dict[str, str]:
    """Every password and key `eve up` keeps in its data dir, by file: the superuser's, the login
    roles', the JWT secret and the org-secrets key. None of them may appear in its output."""
    files = [data / "superuser.password", data / "jwt.secret", data / "secrets.key",
             *sorted((data / "secrets").iterdir())]
    found = {str(f.relative_to(data)): f.read_text().strip() for f in files if f.is_file()}
    assert "superuser.password" in found and any(k.startswith("secrets/") for k in found), found
    return found
    wait_for(lambda: not any(str(data) in _cmdline(p) for p in _all_pids()), 30, "postgres to exit")


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    out = []
    for p in _all_pids():
        try:
            if int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(p)
        except (OSError, ValueError, IndexError):
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
