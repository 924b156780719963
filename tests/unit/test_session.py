"""Stored sessions as files: where Claude Code keeps a transcript, and the workspace archive."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from eve.executor import session
from eve.executor.session import (
    ArchiveTooLarge, archive_workspace, load_transcript, project_dir_name, restore_transcript,
    restore_workspace, resume_prompt, tree_bytes,
)

SID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_project_dir_name_is_claude_codes():
    assert project_dir_name("/workspace/0f8f-ab.c_d") == "-workspace-0f8f-ab-c-d"


def test_transcript_is_found_and_restored_under_the_new_cwd(tmp_path):
    old = tmp_path / "cfg-old" / "projects" / project_dir_name("/old/ws") / f"{SID}.jsonl"
    old.parent.mkdir(parents=True)
    old.write_text('{"type": "user"}\n')
    found = load_transcript([tmp_path / "missing", tmp_path / "cfg-old"], SID, anchor=tmp_path)
    assert found.rel == f"projects/{project_dir_name('/old/ws')}/{SID}.jsonl"
    gz = found.data
    assert gzip.decompress(gz) == old.read_bytes()
    [written] = restore_transcript([tmp_path / "cfg-new"], "/workspace/r1", SID, gz)
    assert written == tmp_path / "cfg-new" / "projects" / "-workspace-r1" / f"{SID}.jsonl"
    assert written.read_text() == '{"type": "user"}\n'


@pytest.mark.parametrize("bad", ["../../etc/passwd", "*", "", "a/b"])
def test_a_session_id_that_is_not_an_id_finds_nothing(tmp_path, bad):
    (tmp_path / "projects" / "x").mkdir(parents=True)
    (tmp_path / "projects" / "x" / "y.jsonl").write_text("{}")
    assert load_transcript([tmp_path], bad, anchor=None) is None


def test_workspace_round_trip_and_cap(tmp_path):
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "notes.txt").write_text("keep me")
    (ws / "sub" / "data.bin").write_bytes(b"\0" * 1000)
    archive = archive_workspace(ws, cap_bytes=1 << 20)
    assert archive is not None
    dest = tmp_path / "restored"
    dest.mkdir()
    (dest / "stale").write_text("from before")
    restore_workspace(archive, dest)
    assert (dest / "notes.txt").read_text() == "keep me" and (dest / "sub" / "data.bin").stat().st_size == 1000
    assert not (dest / "stale").exists()
    assert archive_workspace(ws, cap_bytes=10) is None  # over the cap: not kept


def test_restore_skips_what_would_escape_the_workspace(tmp_path):
    """The agent wrote the workspace: a crafted archive member must not land outside it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("../escaped.txt", "/tmp/absolute.txt", "ok.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    ws = tmp_path / "ws"
    assert restore_workspace(buf.getvalue(), ws) == 2  # the climb out and the link out
    assert (ws / "ok.txt").read_text() == "x"
    assert (ws / "tmp" / "absolute.txt").exists()  # an absolute name lands inside, stripped of its /
    assert not Path("/tmp/absolute.txt").exists()
    assert not (tmp_path / "escaped.txt").exists() and not (ws / "passwd").exists()


def test_archiving_keeps_an_agents_symlink_as_a_link(tmp_path):
    """The worker archives as root: a link to a host file must not be followed into the archive."""
    ws = tmp_path / "ws"
    ws.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (ws / "leak").symlink_to(secret)
    archive = archive_workspace(ws)
    assert archive is not None and b"host secret" not in gzip.decompress(archive)


def test_resume_prompt_names_outcomes_and_lost_files():
    text = resume_prompt(["child a success: done", "child b failed (agent_error): boom"], workspace_kept=False)
    assert "- child a success: done" in text and "- child b failed (agent_error): boom" in text
    assert "were not kept" in text
    assert "were not kept" not in resume_prompt(["x"], workspace_kept=True)


def test_a_sparse_file_is_refused_before_it_is_read(tmp_path):
    """`truncate -s 1T` costs an agent nothing and compresses to almost nothing, but archiving
    it would read every byte: its apparent size is checked first, from the directory."""
    ws = tmp_path / "ws"
    (ws / "deep" / "er").mkdir(parents=True)
    (ws / "small.txt").write_text("x")
    with open(ws / "deep" / "er" / "huge", "wb") as f:
        f.truncate(1 << 40)
    assert tree_bytes(ws, 1 << 20) is None
    assert archive_workspace(ws, cap_bytes=1 << 20, unpacked_cap_bytes=1 << 20) is None
    (ws / "deep" / "er" / "huge").unlink()
    assert tree_bytes(ws, 1 << 20) == 1 + 3 * 512  # small.txt's byte, and three entries' headers


def test_many_empty_files_count_against_the_cap_too(tmp_path):
    """A million empty files is no data but a long walk and a big tar: each entry counts a header."""
    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(300):
        (ws / f"empty-{i}").touch()
    assert tree_bytes(ws, 100 * 512) is None
    assert archive_workspace(ws, unpacked_cap_bytes=100 * 512) is None
    assert tree_bytes(ws, 1 << 20) == 300 * 512


def test_the_compressed_cap_stops_the_archive_inside_one_file(tmp_path):
    """One file larger than the cap: the archive stops growing at the cap instead of after the file."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "random.bin").write_bytes(os.urandom(4 << 20))  # incompressible
    offered = []
    buffers = []

    class Spy(session._CappedBuffer):
        def __init__(self, cap):
            super().__init__(cap)
            buffers.append(self)

        def write(self, data):
            offered.append(len(data))
            return super().write(data)

    orig = session._CappedBuffer
    session._CappedBuffer = Spy
    try:
        assert archive_workspace(ws, cap_bytes=256 << 10) is None
    finally:
        session._CappedBuffer = orig
    assert len(buffers[0].getbuffer()) <= 256 << 10
    assert sum(offered) < 1 << 20  # it stopped near the cap, not after compressing all 4 MiB
    assert archive_workspace(ws, cap_bytes=8 << 20) is not None


def test_restore_refuses_an_archive_that_unpacks_past_the_cap(tmp_path):
    """A small archive of zeros can fill a disk: the members' sizes are added up first,
    and nothing is written (not even the old workspace removed) when they pass the cap."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(3):
            info = tarfile.TarInfo(f"zeros-{i}")
            info.size = 4 << 20
            tar.addfile(info, io.BytesIO(b"\0" * info.size))
    archive = buf.getvalue()
    assert len(archive) < 100 << 10
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "before").write_text("untouched")
    with pytest.raises(ArchiveTooLarge):
        restore_workspace(archive, ws, unpacked_cap_bytes=8 << 20)
    assert [p.name for p in ws.iterdir()] == ["before"]
    assert restore_workspace(archive, ws, unpacked_cap_bytes=(12 << 20) + 3 * 512) == 0
    assert sorted(p.name for p in ws.iterdir()) == ["zeros-0", "zeros-1", "zeros-2"]


def test_an_oversized_transcript_is_not_read(tmp_path):
    path = tmp_path / "cfg" / "projects" / "p" / f"{SID}.jsonl"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    assert load_transcript([tmp_path / "cfg"], SID, anchor=tmp_path, cap_bytes=1 << 20).data is None
    path.write_text('{"type": "user"}\n')
    got = load_transcript([tmp_path / "cfg"], SID, anchor=tmp_path, cap_bytes=1 << 20)
    assert gzip.decompress(got.data) == b'{"type": "user"}\n'


@pytest.mark.parametrize("plant", ["projects-link", "dir-link", "file-link", "fifo", "hardlink"])
def test_a_transcript_the_agent_shaped_is_never_followed(tmp_path, plant):
    """Whatever the agent left where the transcript should be, the worker reads nothing through it."""
    secret_dir = tmp_path / "secret" / "projects" / "p"
    secret_dir.mkdir(parents=True)
    (secret_dir / f"{SID}.jsonl").write_text("ANOTHER TENANT'S TRANSCRIPT")
    cfg = tmp_path / "turn" / "cfg"
    (cfg / "projects").mkdir(parents=True)
    target = cfg / "projects" / "p" / f"{SID}.jsonl"
    if plant == "projects-link":
        (cfg / "projects").rmdir()
        (cfg / "projects").symlink_to(tmp_path / "secret" / "projects")
    elif plant == "dir-link":
        (cfg / "projects" / "p").symlink_to(secret_dir)
    else:
        target.parent.mkdir()
        if plant == "file-link":
            target.symlink_to(secret_dir / f"{SID}.jsonl")
        elif plant == "fifo":
            os.mkfifo(target)  # a worker that opened it for reading would hang here
        else:
            os.link(secret_dir / f"{SID}.jsonl", target)
    assert load_transcript([cfg], SID, anchor=tmp_path / "turn") is None


def test_restoring_a_transcript_replaces_a_planted_link_instead_of_writing_through(tmp_path):
    decoy = tmp_path / "decoy"
    decoy.write_text("root only")
    decoy.chmod(0o600)
    root = tmp_path / "cfg"
    (root / "projects" / "-workspace-r1").mkdir(parents=True)
    (root / "projects" / "-workspace-r1" / f"{SID}.jsonl").symlink_to(decoy)
    restore_transcript([root], "/workspace/r1", SID, gzip.compress(b"{}\n"))
    assert decoy.read_text() == "root only" and (decoy.stat().st_mode & 0o777) == 0o600
    assert not (root / "projects" / "-workspace-r1" / f"{SID}.jsonl").is_symlink()


def test_the_archive_leaves_out_hard_linked_files(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    outside = tmp_path / "shadow"
    outside.write_text("not the agent's")
    os.link(outside, ws / "looks-innocent")
    (ws / "mine").write_text("the agent's")
    dest = tmp_path / "restored"
    restore_workspace(archive_workspace(ws), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["mine"]


def test_tree_bytes_counts_blocks_when_asked(tmp_path):
    """The agents' disk limit counts what files take on disk: a sparse terabyte is free."""
    (tmp_path / "sparse").touch()
    os.truncate(tmp_path / "sparse", 1 << 40)
    (tmp_path / "real").write_bytes(b"x" * (1 << 20))
    assert tree_bytes(tmp_path, 1 << 30) is None  # apparent sizes (the archive's cap)
    used = tree_bytes(tmp_path, 1 << 30, blocks=True)
    assert used is not None and (1 << 20) <= used < (2 << 20)
