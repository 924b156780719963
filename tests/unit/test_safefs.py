"""eve.executor.safefs: the worker's file work in an agent's tree never follows what the agent made."""

from __future__ import annotations

import os

import pytest

from eve.executor import safefs


def _decoy(tmp_path):
    decoy = tmp_path / "decoy"
    decoy.mkdir(mode=0o700)
    (decoy / "secret").write_text("root only")
    (decoy / "secret").chmod(0o600)
    return decoy


def test_write_through_a_linked_directory_is_refused(tmp_path):
    decoy = _decoy(tmp_path)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".claude").symlink_to(decoy)
    with pytest.raises(safefs.UnsafePath):
        safefs.write_file(ws, ".claude/skills/x/SKILL.md", b"skill")
    assert sorted(os.listdir(decoy)) == ["secret"]


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_linked_target_is_replaced_not_written_through(tmp_path, link):
    decoy = _decoy(tmp_path)
    ws = tmp_path / "ws"
    ws.mkdir()
    if link == "symlink":
        (ws / "passwd").symlink_to(decoy / "secret")
    else:
        os.link(decoy / "secret", ws / "passwd")
    safefs.write_file(ws, "passwd", b"mine", mode=0o644)
    assert (decoy / "secret").read_text() == "root only"
    assert ((decoy / "secret").stat().st_mode & 0o777) == 0o600
    assert (ws / "passwd").read_bytes() == b"mine" and not (ws / "passwd").is_symlink()


@pytest.mark.parametrize("rel", ["../decoy/secret", "/etc/passwd", "a/../../decoy/secret"])
def test_paths_that_climb_out_are_refused(tmp_path, rel):
    _decoy(tmp_path)
    (tmp_path / "ws").mkdir()
    with pytest.raises(safefs.UnsafePath):
        safefs.read_regular(tmp_path / "ws", rel, 100)


def test_read_regular_wants_one_regular_file(tmp_path):
    decoy = _decoy(tmp_path)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "ok").write_text("fine")
    (ws / "link").symlink_to(decoy / "secret")
    os.mkfifo(ws / "fifo")
    os.link(decoy / "secret", ws / "hard")
    assert safefs.read_regular(ws, "ok", 100) == b"fine"
    assert safefs.read_regular(ws, "ok", 2) is None  # over the cap
    for name in ("link", "fifo", "hard"):
        with pytest.raises(safefs.UnsafePath):
            safefs.read_regular(ws, name, 100)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_chown_tree_reowns_links_not_their_targets_and_skips_hard_links(tmp_path):
    decoy = _decoy(tmp_path)
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "file").write_text("x")
    (ws / "to-decoy").symlink_to(decoy)
    (ws / "to-secret").symlink_to(decoy / "secret")
    os.link(decoy / "secret", ws / "hard")
    assert safefs.chown_tree(ws, 61999) == 1
    assert os.lstat(ws / "sub" / "file").st_uid == 61999 and os.lstat(ws / "to-decoy").st_uid == 61999
    assert decoy.stat().st_uid == 0 and (decoy / "secret").stat().st_uid == 0


def test_remove_tree_unlinks_a_link_and_never_empties_its_target(tmp_path):
    decoy = _decoy(tmp_path)
    (tmp_path / "ws").symlink_to(decoy)
    safefs.remove_tree(tmp_path / "ws")
    real = tmp_path / "real"
    real.mkdir()
    (real / "inner").symlink_to(decoy)
    safefs.remove_tree(real)
    assert not real.exists() and (decoy / "secret").read_text() == "root only"
