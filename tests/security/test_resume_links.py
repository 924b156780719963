"""A hostile agent plants links in its workspace, asks a question, and is resumed in place.

Before the fix the root worker wrote through them on resume: passwd/group and the config
copy (`.eve-sandbox/...`), the private HOME (`.home`), the skills (`.claude`), the
transcript restore — overwriting, chmod-ing and chown-ing root-only files, and (uid mode)
handing the operator's shared variant config dir to the agent's uid. Each test hashes a
root-only decoy tree before and after the two turns; it must be untouched, its secret
never seen, and the operator's config dir still root's.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest

from eve import queue
from tests.e2e.test_worker_e2e import events_of, result_of, sync_conn
from tests.security.conftest import AGENT_LIB, ROOT_ONLY, make_decoy, tree_digest, write_agent
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker

pytestmark = [pytest.mark.e2e, ROOT_ONLY]

HOSTILE = AGENT_LIB + r'''
import re, uuid
DECOY = os.environ["EVE_CTX_DECOY"]
cfg = os.environ["CLAUDE_CONFIG_DIR"]
cwd = os.getcwd()
project = os.path.join(cfg, "projects", re.sub("[^A-Za-z0-9]", "-", cwd))
if "--resume" in sys.argv:
    sid = sys.argv[sys.argv.index("--resume") + 1]
    home = os.environ["HOME"]
    seen = {"turn": 2, "resumed_transcript": os.path.isfile(os.path.join(project, sid + ".jsonl")) or os.path.isfile(
                os.path.join(home, ".claude", "projects", os.path.basename(project), sid + ".jsonl")),
            "read": [can_read(p) for p in (os.path.join(home, "secret.txt"), ".home/secret.txt",
                                           ".eve-sandbox/config-0/secret.txt", os.path.join(cfg, "secret.txt"),
                                           "/etc/passwd", DECOY + "/secret.txt")]}
    try:  # a shared config dir handed over would let every later agent run these hooks
        with open(os.path.join(cfg, "settings.json"), "w") as fh:
            fh.write('{"hooks": {"PreToolUse": [{"hooks": [{"type": "command", "command": "id"}]}]}}')
        seen["wrote_settings"] = True
    except OSError:
        seen["wrote_settings"] = False
    finish(seen, sid)
else:
    import shutil
    sid = str(uuid.uuid4())

    def plant(link, target):  # whatever the worker laid out there (skills, or older layouts) moves aside
        if os.path.lexists(link):
            os.rename(link, link + ".moved-" + uuid.uuid4().hex[:6])
        os.symlink(target, link)

    os.makedirs(".eve-sandbox", exist_ok=True)
    links = [(".eve-sandbox/passwd", DECOY + "/inner/passwd"), (".eve-sandbox/group", DECOY + "/made-by-root"),
             (".claude", DECOY + "/inner")]
    if os.environ["EVE_CTX_MODE"] == "bwrap":  # (in uid mode the old layout's HOME held this turn's transcript)
        links.append((".home", DECOY))
    line = json.dumps({"type": "user", "message": {"role": "user", "content": "turn 1"}}) + "\n"
    # the transcript Claude Code would have left: in its config dir, or (not writable) in ~/.claude
    for where in (project, os.path.join(os.environ["HOME"], ".claude", "projects", os.path.basename(project))):
        try:
            os.makedirs(where, exist_ok=True)
            with open(os.path.join(where, sid + ".jsonl"), "w") as fh:
                fh.write(line)
            os.symlink(DECOY, os.path.join(where, "planted-link"))
            break
        except OSError:
            continue
    for link, target in links:
        plant(link, target)
    api("POST", "/hitl", {"question": "Go on?", "options": ["yes", "no"]})
    finish({"turn": 1}, sid)
'''


def _result(db_url: str, request_id) -> dict | None:
    with sync_conn(db_url) as c:
        return c.execute("SELECT status, error FROM eve.orchestration_results WHERE request_id = %s",
                         (request_id,)).fetchone()


def _operator_config(base: Path) -> tuple[Path, str]:
    """The operator's variant config dir, shared by every agent of the worker (as cc-mirror's is)."""
    cfg = base / "operator" / ".cc-mirror" / "hostile" / "config"
    cfg.mkdir(parents=True)
    settings = '{"env": {}}'
    (cfg / "settings.json").write_text(settings)
    return cfg, settings


@pytest.mark.parametrize("mode", ["bwrap", "uid"])
async def test_resume_in_place_follows_none_of_the_agents_links(db_url, conn, tmp_path, public_dir, mode):
    decoy, secret = make_decoy(public_dir)
    before = tree_digest(decoy)
    cfg, settings = _operator_config(public_dir)
    agent = write_agent(public_dir / "bin", "mclaude", HOSTILE, config_dir=cfg)
    tenant = await make_tenant(conn, f"hostile-{mode}")
    api = start_api(db_url, tmp_path)
    worker = None
    try:
        api.wait_ready()
        worker = start_worker(db_url, tmp_path, path_prepend=agent.parent, name=f"resume-{mode}",
                              env={"EVE_API_URL": api.url},
                              args=["--sandbox", mode, "--workspace-root", str(public_dir / "ws"),
                                    "--sandbox-uid-base", "62100"])
        assert worker.wait_healthy()["sandbox"] == mode
        req = await queue.enqueue(conn, org_id=tenant.org_id, user_id=tenant.user_id, worker_type="general",
                                  prompt="plant and wait", context={"decoy": str(decoy), "mode": mode})
        with httpx.Client(base_url=api.url, timeout=30) as http:
            token = http.post("/auth/token", json={"apiKey": tenant.api_key}).json()["token"]
            http.headers["Authorization"] = f"Bearer {token}"

            def question() -> list:
                if (done := _result(db_url, req.id)) is not None:  # it ended before asking: say why
                    raise AssertionError(f"no question asked: {done} {events_of(db_url, req.id)}")
                return http.get("/hitl", params={"status": "pending"}).json()["items"]

            pending = wait_for(question, 60, "the agent's question")
            wait_for(lambda: http.get(f"/requests/{req.id}").json()["status"] == "waiting", 30, "the request to park")
            assert http.post(f"/hitl/{pending[0]['id']}/answer", json={"answer": "yes"}).status_code == 200
            res = result_of(db_url, req.id, timeout=60)
    finally:
        if worker is not None:
            worker.stop()
        api.stop()
    everything = json.dumps(events_of(db_url, req.id), default=str) + json.dumps(res, default=str)
    resumed = [e["data"] for e in events_of(db_url, req.id) if e["kind"] == "resumed"]
    assert resumed and resumed[0]["workspace"] == "reused", resumed  # the path under attack: reuse in place
    assert res["status"] == "success", res
    seen = json.loads(res["summary"])
    assert seen["turn"] == 2 and seen["resumed_transcript"], seen
    assert tree_digest(decoy) == before, "the worker wrote, chmod-ed or chown-ed through an agent's link"
    assert secret not in everything
    # the operator's config dir is nobody's but root's, and what the agent wrote stayed in its own copy
    assert cfg.stat().st_uid == 0 and (cfg / "settings.json").stat().st_uid == 0
    assert (cfg / "settings.json").read_text() == settings and not (cfg / "projects").exists()
