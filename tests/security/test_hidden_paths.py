"""What the bwrap sandbox must hide even where the tree around it is shown.

`--sandbox-hide` paths (eve up hides its data dir), everything under ALWAYS_HIDDEN such as
/etc/eve, and /etc files that are not world-readable: the agent sees none of it, though
the system dirs around them are bound read-only. The decoys are world-readable files in
visible trees (/opt, /etc), so only the sandbox's masking keeps them from the agent. The
worker holds EVE_SECRETS_KEY (the org secrets' key) and JWT_SECRET; the agent's
environment, and every environ it can read, has neither.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from eve import queue
from eve.executor.sandbox import hidden_etc_paths
from tests.e2e.test_worker_e2e import result_of
from tests.security.conftest import AGENT_LIB, ROOT_ONLY, write_agent
from tests.support.tenants import make_tenant
from tests.support.workerproc import start_worker

pytestmark = [pytest.mark.e2e, ROOT_ONLY]
UID = 62500

PEEK = AGENT_LIB + r'''
import glob, uuid
paths = json.loads(os.environ["EVE_CTX_PATHS"])
environs = ""
for f in glob.glob("/proc/*/environ"):
    environs += can_read(f) or ""
finish({"read": {p: can_read(p) for p in paths}, "own_env": sorted(os.environ),
        "environs": environs}, str(uuid.uuid4()))
'''


async def test_hidden_paths_and_platform_keys_stay_out_of_the_sandbox(db_url, conn, tmp_path, public_dir):
    secret = "HIDDEN-" + secrets.token_hex(12)
    data = public_dir / "data"  # as eve up's data dir, inside a tree the sandbox shows (/opt)
    data.mkdir(mode=0o755)
    (data / "superuser.password").write_text(secret)
    (data / "superuser.password").chmod(0o644)
    etc_eve = Path("/etc/eve")
    made_etc_eve = not etc_eve.exists()
    etc_eve.mkdir(exist_ok=True)
    planted = etc_eve / f"test-{secrets.token_hex(4)}.env"
    planted.write_text(f"TOKEN={secret}\n")
    planted.chmod(0o644)
    private_etc = Path("/etc") / f"eve-test-{secrets.token_hex(4)}.key"
    private_etc.write_text(secret)
    private_etc.chmod(0o600)  # not world-readable: hidden_etc_paths masks it, even from its owner
    os.chown(private_etc, UID, UID)  # (as when the agent maps to the file's owner: a user-namespace sandbox)
    assert str(private_etc) in hidden_etc_paths()
    keys = {"EVE_SECRETS_KEY": Fernet.generate_key().decode(), "JWT_SECRET": secrets.token_urlsafe(40)}
    cfg = public_dir / "config"
    cfg.mkdir()
    agent = write_agent(public_dir / "bin", "mclaude", PEEK, config_dir=cfg)
    tenant = await make_tenant(conn, "hidden")
    worker = start_worker(db_url, tmp_path, path_prepend=agent.parent, name="hidden", env=keys,
                          args=["--sandbox", "bwrap", "--sandbox-hide", str(data), "--sandbox-uid-base", str(UID)])
    try:
        assert worker.wait_healthy()["sandbox"] == "bwrap"
        paths = [str(data / "superuser.password"), str(planted), str(private_etc), "/opt/" + public_dir.name + "/bin/mclaude"]
        req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt="peek", context={"paths": json.dumps(paths)})
        res = result_of(db_url, req.id, timeout=60)
    finally:
        worker.stop()
        planted.unlink(missing_ok=True)
        private_etc.unlink(missing_ok=True)
        if made_etc_eve:
            shutil.rmtree(etc_eve, ignore_errors=True)
    assert res["status"] == "success", res
    seen = json.loads(res["summary"])
    assert seen["read"][paths[3]], "the probe could not even read its own variant: it proves nothing"
    for p in paths[:3]:
        assert not seen["read"][p], f"{p} was readable inside the sandbox: {seen['read'][p]!r}"
    assert secret not in res["summary"]
    assert not {"EVE_SECRETS_KEY", "JWT_SECRET", "DATABASE_URL"} & set(seen["own_env"])
    for value in keys.values():
        assert value not in seen["environs"]
