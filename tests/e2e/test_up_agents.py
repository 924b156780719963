"""Agents under `eve up` as an operator starts it: in uid mode, and from a minimal environment.

* `eve up --sandbox uid`: the workspaces must lie where the agents' own uid can reach them
  (not in the 0700 data dir), and the agent runs real tools through the real Claude Code CLI.
* `eve up` started as `env -i PATH=/usr/bin:/bin HOME=...`, with a variant whose config dir
  does not exist yet (Claude Code then cannot keep its shell snapshot and runs a login
  shell, whose /etc/profile resets PATH): the agent still finds `eve`, creates children,
  `eve wait`s, is resumed, and asks a question that a person answers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path

import pytest

from tests.e2e.claude_cli import write_variant
from tests.e2e.fake_anthropic import FakeAnthropic
from tests.e2e.test_hitl_e2e import ASK, Decision
from tests.e2e.test_orchestration_e2e import ResumedTurn
from tests.support.upproc import start_up
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _json(up, *args: str) -> dict:
    res = up.eve(*args, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def _create(up, prompt: str, *extra: str) -> str:
    return _json(up, "request", "create", "--worker-type", "general", "--prompt", prompt, *extra)["id"]


def _result(up, request_id: str, timeout: float = 120) -> dict:
    def done() -> dict | None:
        res = up.eve("result", "get", request_id, "--json")
        return json.loads(res.stdout) if res.returncode == 0 else None

    return wait_for(done, timeout, f"the result of {request_id}\n{up.output()[-3000:]}")


@pytest.fixture
def public_claude(claude_bin: Path):
    """Claude Code where any uid may run it (the test cache sits under root's 0700 HOME): a hard
    link of its native binary (a copy across filesystems) under /opt, removed afterwards."""
    base = Path("/opt") / f"eve-up-uid-{secrets.token_hex(4)}"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    exe = base / "claude"
    real = claude_bin.resolve()
    try:
        try:
            os.link(real, exe)
        except OSError:
            shutil.copy2(real, exe)
        yield base, exe
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="uid mode needs a root worker (or CAP_SETUID/CAP_SETGID)")
def test_eve_up_in_uid_mode_runs_an_agents_tools(tmp_path, public_claude, fake_api: FakeAnthropic):
    base, claude = public_claude
    write_variant(base / "bin", "mclaude", claude=claude, base_url=fake_api.url, home=base / "home")
    up = start_up(tmp_path, base / "bin", "--sandbox", "uid")
    try:
        up.wait_ready()
        out = up.output()
        found = re.search(r"^workspaces +(/\S+)$", out, re.M)
        assert found, out
        root = found.group(1)
        assert not root.startswith(str(up.data_dir)), out  # not inside the 0700 data dir
        rid = _create(up, "[[bash: echo uid-$(id -u) > proof.txt && cat proof.txt]]")
        res = _result(up, rid)
        assert res["status"] == "success", res
        logs = up.eve("logs", "--request-id", rid)
        assert re.search(r"uid-6\d{4}", logs.stdout), logs.stdout  # the tool really ran, as a slot uid
    finally:
        up.stop()
        if "root" in locals() and root.startswith("/var/lib/eve-horizon/"):
            shutil.rmtree(Path(root).parent, ignore_errors=True)


def test_eve_up_from_a_minimal_environment_orchestrates_and_asks(tmp_path, claude_bin: Path,
                                                                 fake_api: FakeAnthropic):
    home = tmp_path / "operator-home"
    home.mkdir()
    bin_dir = tmp_path / "variant-bin"
    write_variant(bin_dir, "mclaude", claude=claude_bin, base_url=fake_api.url, home=tmp_path / "variant-home")
    shutil.rmtree(tmp_path / "variant-home")  # the variant's config dir does not exist yet
    resumed = ResumedTurn()
    fake_api.add_rule(resumed)
    up = start_up(tmp_path, bin_dir, "--workers", "general=1,code-review=1",
                  base_env={"PATH": "/usr/bin:/bin", "HOME": str(home)})
    try:
        up.wait_ready()
        parent = _create(up, "[[bash: eve request create -t code-review -p 'child alpha' --child --reply-to-parent "
                             "&& eve request create -t code-review -p 'child beta' --child --reply-to-parent "
                             "&& echo 'keep me' > notes.txt && eve wait]]")
        res = _result(up, parent, timeout=180)
        assert res["status"] == "success", res
        kids = _json(up, "request", "children", parent)
        ids = [k["id"] for k in (kids["items"] if isinstance(kids, dict) else kids)]
        assert len(ids) == 2 and all(i in res["summary"] for i in ids), res["summary"]
        assert "keep me" in res["summary"]
        fake_api.rules.remove(resumed)

        decision = Decision()
        fake_api.add_rule(decision)
        asking = _create(up, ASK)
        pending = wait_for(lambda: _json(up, "hitl", "list")["items"], 90, "the agent's question")
        answered = up.eve("hitl", "answer", pending[0]["id"], "yes")
        assert answered.returncode == 0, answered.stdout + answered.stderr
        res = _result(up, asking)
        assert res["status"] == "success" and res["summary"].startswith("Deploying v2"), res
        fake_api.rules.remove(decision)
    finally:
        for rule in (resumed, locals().get("decision")):
            if rule in fake_api.rules:
                fake_api.rules.remove(rule)
        up.stop()
