"""The agent's environment is an allowlist; context is flattened and can override nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


from eve.executor import variant
from eve.executor.env import build_env, flatten_context
from eve.executor.run import command
from eve.executor.workspace import prepare
from eve.models import Request, WorkerType

WORKER_ENV = {
    "PATH": "/usr/bin:/bin", "HOME": "/home/eve", "LANG": "C.UTF-8",
    "DATABASE_URL": "postgresql://secret", "JWT_SECRET": "x" * 40, "AWS_SECRET_ACCESS_KEY": "nope",
    "ANTHROPIC_API_KEY": "sk-ant", "ANTHROPIC_BASE_URL": "http://x", "Z_AI_API_KEY": "z", "GH_TOKEN": "gh",
    "CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel", "LD_PRELOAD": "/evil.so",
}


def test_only_allowlisted_variables_reach_the_agent():
    env, _ = build_env(WORKER_ENV, request_id="r", org_id="o", user_id="u", worker_type="general",
                       home="/ws/.home", context={})
    assert env["PATH"] == "/usr/bin:/bin" and env["HOME"] == "/ws/.home"
    for key in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "Z_AI_API_KEY", "GH_TOKEN",
                "CLAUDE_CODE_ENABLE_TELEMETRY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert env[key] == WORKER_ENV[key]
    for key in ("DATABASE_URL", "JWT_SECRET", "AWS_SECRET_ACCESS_KEY", "LD_PRELOAD"):
        assert key not in env
    assert (env["EVE_REQUEST_ID"], env["EVE_ORG_ID"], env["EVE_USER_ID"], env["EVE_WORKER_TYPE"]) == (
        "r", "o", "u", "general")


def test_context_cannot_override_the_allowlist():
    env, _ = build_env(WORKER_ENV, request_id="r", org_id="o", user_id="u", worker_type="g", home="/h",
                       context={"PATH": "/evil", "LD_PRELOAD": "/x.so", "ANTHROPIC_API_KEY": "stolen"})
    assert env["PATH"] == "/usr/bin:/bin" and env["ANTHROPIC_API_KEY"] == "sk-ant" and "LD_PRELOAD" not in env
    assert env["EVE_CTX_PATH"] == "/evil" and env["EVE_CTX_LD_PRELOAD"] == "/x.so"


def test_flatten_context():
    flat, skipped = flatten_context({
        "repo": {"fullName": "acme/api", "default-branch": "main"}, "prNumber": 42, "draft": False,
        "labels": ["a"], "empty": {}, "none": None, "ratio": 0.5, "9lives": 1, "nested": {"bad key": 1},
    })
    assert flat == {
        "EVE_CTX_REPO_FULL_NAME": "acme/api", "EVE_CTX_REPO_DEFAULT_BRANCH": "main", "EVE_CTX_PR_NUMBER": "42",
        "EVE_CTX_DRAFT": "false", "EVE_CTX_LABELS": '["a"]', "EVE_CTX_EMPTY": "{}", "EVE_CTX_NONE": "",
        "EVE_CTX_RATIO": "0.5", "EVE_CTX_9LIVES": "1",
    }
    assert skipped == [{"key": "nested.bad key", "reason": "not a valid env name"}]


def test_variant_resolution(tmp_path: Path):
    exe = tmp_path / "zai"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert variant.resolve("zai", {}, {"PATH": str(tmp_path)}) == str(exe)
    assert variant.resolve("zai", {}, {"PATH": "/nowhere", "EVE_VARIANT_ZAI": str(exe)}) == str(exe)
    assert variant.resolve("zai", {"variants": {"zai": str(exe)}}, {"PATH": "/nowhere"}) == str(exe)
    with pytest.raises(variant.VariantNotFound, match="not an executable file"):
        variant.resolve("zai", {}, {"EVE_VARIANT_ZAI": str(tmp_path / "missing")})
    with pytest.raises(variant.VariantNotFound, match="npx cc-mirror quick --provider mirror --name mclaude"):
        variant.resolve("mclaude", {}, {"PATH": "/nowhere"})
    assert variant.variant_name({}, {}) == "mclaude"
    assert variant.variant_name({"variant": "zai"}, {"variant": "mclaude"}) == "zai"


def _request(**config) -> Request:
    import uuid
    from datetime import datetime, timezone

    return Request(id=uuid.uuid4(), created_at=datetime.now(timezone.utc), org_id=uuid.uuid4(), user_id=uuid.uuid4(),
                   worker_type="general", status="claimed", prompt="--help me", config=config)


def test_command_line_puts_the_prompt_after_double_dash():
    wt = WorkerType(id="general", name="G", docker_image="x", config={"allowed_tools": ["Bash", "Read"]})
    cmd = command("/bin/mclaude", _request(model="opus"), wt)
    assert cmd == ["/bin/mclaude", "--print", "--output-format", "stream-json", "--verbose", "--model", "opus",
                   "--allowedTools", "Bash,Read", "--", "--help me"]


def test_workspace_gets_skills_and_a_fresh_dir_per_attempt(tmp_path: Path):
    ws = prepare(tmp_path, "req1", 1, ["general", "code-review", "no-such-skill"])
    assert ws.skills == ["general", "code-review"] and ws.missing_skills == ["no-such-skill"]
    assert (ws.path / ".claude/skills/code-review/SKILL.md").read_text().startswith("---\nname: code-review")
    (ws.path / "leftover").write_text("x")
    (ws.home / "from-turn-1").write_text("x")
    ws2 = prepare(tmp_path, "req1", 2, [])
    assert not (ws2.path / "leftover").exists()
    assert os.path.isdir(ws2.home) and not (ws2.home / "from-turn-1").exists()  # HOME is fresh every turn
    assert ws2.turn.parent == tmp_path / ".eve-turns" and not str(ws2.home).startswith(str(ws2.path))


def test_skills_go_into_a_resumed_workspace_without_following_its_links(tmp_path: Path):
    ws = prepare(tmp_path, "req1", 1, [])
    decoy = tmp_path / "decoy"
    decoy.mkdir(mode=0o700)
    (ws.path / ".claude").symlink_to(decoy)
    ws2 = prepare(tmp_path, "req1", 2, ["general"], keep=True)
    assert list(decoy.iterdir()) == [] and not (ws2.path / ".claude").is_symlink()
    assert (ws2.path / ".claude" / "skills" / "general" / "SKILL.md").is_file()

