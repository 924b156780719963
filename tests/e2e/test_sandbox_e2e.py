"""The agent sandbox, played by a hostile agent through the real Claude Code CLI.

The worker runs as it does under `eve up`: with the database superuser DSN and a
JWT_SECRET in its environment, an operator config with an API key in its HOME and a
data dir holding the superuser password. A probing agent tries everything the sandbox
issue lists (other processes' environ, the operator's files, other workspaces,
signalling platform processes, its own uid and capabilities) while a busy agent next to
it does ordinary work, which must still succeed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.e2e.test_worker_e2e import events_of, result_of, submit, sync_conn, wait_kind
from tests.support.agents import agent_pids, kill_agents, uid_readable_variant
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
async def tenant(conn):
    return await make_tenant(conn, "sandbox")


@pytest.fixture
def visible(tmp_path: Path):
    """Where the sandbox shows the tree (/opt, bound read-only) rather than /tmp, which bwrap
    replaces with an empty tmpfs: a secret planted here is kept out by the masking of
    `--sandbox-hide` and HOME, not by the tmpfs. Removed afterwards."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    import shutil

    base = Path("/opt") / f"eve-sandbox-{secrets.token_hex(4)}"
    base.mkdir(mode=0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def platform_files(tmp_path: Path) -> dict[str, str]:
    """An operator HOME with the CLI config, and a data dir with the superuser password (as eve up leaves them)."""
    home = tmp_path / "operator-home"
    (home / ".config" / "eve").mkdir(parents=True)
    api_key = "eve_" + secrets.token_hex(20)
    (home / ".config" / "eve" / "config.toml").write_text(f'api_url = "http://127.0.0.1:3000"\napi_key = "{api_key}"\n')
    data = tmp_path / "data-dir"
    data.mkdir()
    su_password = secrets.token_hex(16)
    (data / "superuser.password").write_text(su_password)
    for f in (home / ".config" / "eve" / "config.toml", data / "superuser.password"):
        f.chmod(0o600)
    return {"home": str(home), "data": str(data), "api_key": api_key, "su_password": su_password}


async def test_hostile_agent_reaches_nothing_and_busy_agent_still_works(db_url, conn, tenant, tmp_path, visible,
                                                                      variant_bin, pg_cluster):
    files = platform_files(visible)
    jwt_secret = secrets.token_urlsafe(40)
    db_password = conninfo_to_dict(db_url).get("password")
    assert db_password, "the test database DSN carries a password the probe must not find"
    with sync_conn(db_url) as c:
        pg_pid = c.execute("SELECT pg_backend_pid() AS p").fetchone()["p"]
    worker = start_worker(db_url, tmp_path, slots=2, path_prepend=variant_bin, name="sandboxed",
                          env={"HOME": files["home"], "JWT_SECRET": jwt_secret},
                          args=["--sandbox", "bwrap", "--sandbox-hide", files["data"]])
    try:
        body = worker.wait_healthy()
        assert body["sandbox"] == "bwrap"
        busy = await submit(conn, tenant, "[[bash: echo data > mine.txt && sleep 4 && "
                                          "python3 -c 'print(open(\"mine.txt\").read().strip() * 2)' && pwd]]")
        wait_kind(db_url, busy.id, "spawned")
        probe_cmd = " ; ".join([
            "for f in /proc/*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null | grep -E 'DATABASE_URL|JWT_SECRET|PASSWORD'",
            f"cat ~/.config/eve/config.toml {files['home']}/.config/eve/config.toml {files['data']}/superuser.password",
            f"find / -xdev -name '{busy.id}' 2>/dev/null; ls /workspace",
            f"ls {worker.workspace_root}",
            f"kill -0 {worker.pid} && echo SIGNAL-WORKER-OK",
            f"kill -0 {pg_pid} && echo SIGNAL-PG-OK",
            f"kill -0 {os.getpid()} && echo SIGNAL-TESTS-OK",
            "echo UID=$(id -u)", "grep CapEff /proc/self/status",
        ])
        probe = await submit(conn, tenant, f"[[bash: {probe_cmd}]]")
        probe_res = result_of(db_url, probe.id, timeout=90)
        busy_res = result_of(db_url, busy.id, timeout=90)
    finally:
        worker.stop()
    probe_text = json.dumps(events_of(db_url, probe.id)) + json.dumps(probe_res, default=str)
    assert probe_res["status"] == "success", probe_res
    tool_out = next(e["data"]["content"] for e in events_of(db_url, probe.id) if e["kind"] == "tool_result")
    assert "UID=" in tool_out and "CapEff" in tool_out, tool_out  # the probe really ran
    for secret in (jwt_secret, db_password, files["api_key"], files["su_password"]):
        assert secret not in probe_text
    assert "DATABASE_URL" not in tool_out and "JWT_SECRET" not in tool_out
    assert str(busy.id) not in tool_out  # no other workspace, by any path
    assert "SIGNAL-" not in tool_out
    uid = int(tool_out.split("UID=")[1].split()[0])
    assert uid != 0
    assert "CapEff:\t0000000000000000" in tool_out
    assert busy_res["status"] == "success", busy_res
    busy_out = next(e["data"]["content"] for e in events_of(db_url, busy.id) if e["kind"] == "tool_result")
    assert "datadata" in busy_out and f"/workspace/{busy.id}" in busy_out


async def test_sigkill_of_the_worker_takes_its_agent_down(db_url, conn, tenant, tmp_path, variant_bin):
    worker = start_worker(db_url, tmp_path, path_prepend=variant_bin, name="doomed", args=["--sandbox", "bwrap"])
    marker = f"{secrets.randbelow(10**6) + 10**6}"
    try:
        worker.wait_healthy()
        req = await submit(conn, tenant, f"[[bash: sleep {marker}]]")
        wait_kind(db_url, req.id, "tool_call")  # the agent runs its tool
        wait_for(lambda: any(f"sleep {marker}" in _cmdline(p) for p in agent_pids(request_ids=[req.id])), 10,
                 "the tool process to appear")
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        wait_for(lambda: not agent_pids(request_ids=[req.id]), 2.0, "every process of the agent to be gone")
    finally:
        worker.kill()
        kill_agents(request_ids=[req.id] if "req" in locals() else [])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


UID_PROBE = """#!/usr/bin/python3
# a variant that plays the hostile agent in uid mode (no namespaces): it reports what it reached
import json, os, sys
def can_read(path):
    try:
        with open(path, "rb") as fh:
            return len(fh.read()) >= 0
    except OSError:
        return False
def can_list(path):
    try:
        os.listdir(path)
        return True
    except OSError:
        return False
env = os.environ
seen = {"uid": os.getuid(), "euid": os.geteuid(), "groups": os.getgroups(),
        "cap_eff": [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0],
        "worker_environ": can_read("/proc/%s/environ" % env["EVE_CTX_WORKER_PID"]),
        "secret": can_read(env["EVE_CTX_SECRET"]),
        "workspace_root": can_list(env["EVE_CTX_ROOT"]),
        "own_workspace": can_list("."),
        "home": env.get("HOME"), "has_db_url": "DATABASE_URL" in env}
try:
    os.kill(int(env["EVE_CTX_WORKER_PID"]), 0)
    seen["signal_worker"] = True
except OSError:
    seen["signal_worker"] = False
open("mine.txt", "w").write("ok")
seen["wrote"] = open("mine.txt").read() == "ok"
w = sys.stdout.write
w(json.dumps({"type": "system", "subtype": "init", "model": "probe", "tools": []}) + "\\n")
w(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": json.dumps(seen),
              "usage": {"input_tokens": 1, "output_tokens": 1}, "total_cost_usd": 0.0}) + "\\n")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="uid mode needs a root worker (or CAP_SETUID/CAP_SETGID)")
async def test_uid_mode_runs_the_agent_as_an_unprivileged_uid_that_reaches_nothing(db_url, conn, tenant, tmp_path):
    with uid_readable_variant(UID_PROBE, prefix="eve-uid-mode-") as outside:
        secret = tmp_path / "superuser.password"
        secret.write_text(secrets.token_hex(8))
        secret.chmod(0o600)
        root = outside / "workspaces"
        worker = start_worker(db_url, tmp_path, path_prepend=outside / "bin", name="uidmode",
                              env={"JWT_SECRET": secrets.token_urlsafe(40)},
                              args=["--sandbox", "uid", "--workspace-root", str(root), "--keep-workspaces"])
        try:
            assert worker.wait_healthy()["sandbox"] == "uid"
            req = await submit(conn, tenant, "probe", context={"workerPid": worker.pid, "secret": str(secret),
                                                                "root": str(root)})
            res = result_of(db_url, req.id, timeout=60)
        finally:
            worker.stop()
        assert res["status"] == "success", res
        seen = json.loads(res["summary"])
        assert seen["uid"] == seen["euid"] == 61000 and seen["groups"] in ([], [61000])
        assert seen["cap_eff"] == "0000000000000000"
        assert not seen["worker_environ"] and not seen["signal_worker"] and not seen["secret"]
        assert not seen["workspace_root"] and seen["own_workspace"] and seen["wrote"]
        assert not seen["has_db_url"] and seen["home"] == str(root / ".eve-turns" / str(req.id) / "home")
        ws = root / str(req.id)
        assert ws.stat().st_uid == 61000 and (ws.stat().st_mode & 0o777) == 0o700
