"""uid mode has no PID namespace: nothing of a turn may outlive it.

Before the fix the slot uid's processes were swept only on timeout, cancel or error: a
`setsid nohup` child of a request that ended with success stayed alive and, as the same
uid, read the next tenant's request token, secrets and workspace. Here the agent starts
such a child and leaves files in the host's shared temp dirs, then succeeds; by the time
its result is written no process of its uid lives and its temp files are gone.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from eve import queue
from tests.e2e.test_worker_e2e import result_of, sync_conn
from tests.security.conftest import AGENT_LIB, ROOT_ONLY, write_agent
from tests.support.tenants import make_tenant
from tests.support.workerproc import start_worker

pytestmark = [pytest.mark.e2e, ROOT_ONLY]
UID = 62300

LEAVE_BEHIND = AGENT_LIB + r'''
import subprocess, uuid
marker = os.environ["EVE_CTX_MARKER"]
# a grandchild in its own session, detached from every pipe: nothing but the uid ties it to the turn
subprocess.Popen(["setsid", "nohup", "sleep", marker], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, start_new_session=True)
subprocess.run(["ipcmk", "-M", "4096"], check=True, capture_output=True)  # System V shared memory
subprocess.run(["ipcmk", "-Q"], check=True, capture_output=True)  # and a message queue
for d in ("/tmp", "/var/tmp", "/dev/shm"):
    with open(os.path.join(d, "eve-left-" + marker), "w") as fh:
        fh.write("for the next tenant on this uid")
finish({"started": marker}, str(uuid.uuid4()))
'''


def _ipc_of(uid: int) -> list[str]:
    found = []
    for kind in ("shm", "msg", "sem"):
        header, *rows = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        cols = header.split()
        found += [f"{kind} {row.split()[1]}" for row in rows if dict(zip(cols, row.split())).get("uid") == str(uid)]
    return found


def _alive(uid: int) -> list[int]:
    """Live (not zombie) processes with `uid` as real, effective or saved uid, read from /proc here
    rather than through the code under test."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if uid in {int(x) for x in fields.get("Uid", "").split()[:3]} and not fields["State"].strip().startswith("Z"):
            pids.append(int(status.parent.name))
    return pids


async def test_a_successful_turn_leaves_no_process_and_no_temp_file_of_its_uid(db_url, conn, tmp_path, public_dir):
    cfg = public_dir / "config"
    cfg.mkdir()
    agent = write_agent(public_dir / "bin", "mclaude", LEAVE_BEHIND, config_dir=cfg)
    tenant = await make_tenant(conn, "leftovers")
    marker = str(secrets.randbelow(10**6) + 10**6)
    worker = start_worker(db_url, tmp_path, path_prepend=agent.parent, name="leftovers",
                          args=["--sandbox", "uid", "--workspace-root", str(public_dir / "ws"),
                                "--sandbox-uid-base", str(UID)])
    left = [Path(d) / f"eve-left-{marker}" for d in ("/tmp", "/var/tmp", "/dev/shm")]
    try:
        assert worker.wait_healthy()["sandbox"] == "uid"
        assert not _alive(UID)
        req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt="leave something behind", context={"marker": marker})
        res = result_of(db_url, req.id, timeout=60)
        # at the moment the result is there: the turn's uid runs nothing, left nothing
        survivors = _alive(UID)
        leftovers = [str(p) for p in left if p.exists()] + _ipc_of(UID)
        assert res["status"] == "success" and json.loads(res["summary"]) == {"started": marker}, res
        assert survivors == [], f"processes of uid {UID} outlived the turn: {survivors}"
        assert leftovers == []
        with sync_conn(db_url) as c:
            events = c.execute("SELECT kind, data FROM eve.request_events WHERE request_id = %s ORDER BY id",
                               (req.id,)).fetchall()
        assert any("shared temp dirs" in json.dumps(e["data"]) for e in events), events
        assert any("shm " in json.dumps(e["data"]) and "msg " in json.dumps(e["data"]) for e in events), events
    finally:
        worker.stop()
        for pid in _alive(UID):
            os.kill(pid, 9)
        for p in left:
            p.unlink(missing_ok=True)
        for item in _ipc_of(UID):
            kind, ident = item.split()
            subprocess.run(["ipcrm", {"shm": "-m", "msg": "-q", "sem": "-s"}[kind], ident], capture_output=True)
