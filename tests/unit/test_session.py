"""Stored sessions as files: where Claude Code keeps a transcript, and the workspace archive."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from eve.executor.session import (
    archive_workspace, find_transcript, project_dir_name, restore_transcript, restore_workspace, resume_prompt,
)

SID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_project_dir_name_is_claude_codes():
    assert project_dir_name("/workspace/0f8f-ab.c_d") == "-workspace-0f8f-ab-c-d"


def test_transcript_is_found_and_restored_under_the_new_cwd(tmp_path):
    old = tmp_path / "cfg-old" / "projects" / project_dir_name("/old/ws") / f"{SID}.jsonl"
    old.parent.mkdir(parents=True)
    old.write_text('{"type": "user"}\n')
    found = find_transcript([tmp_path / "missing", tmp_path / "cfg-old"], SID)
    assert found == old
    gz = gzip.compress(old.read_bytes())
    [written] = restore_transcript([tmp_path / "cfg-new"], "/workspace/r1", SID, gz)
    assert written == tmp_path / "cfg-new" / "projects" / "-workspace-r1" / f"{SID}.jsonl"
    assert written.read_text() == '{"type": "user"}\n'


@pytest.mark.parametrize("bad", ["../../etc/passwd", "*", "", "a/b"])
def test_a_session_id_that_is_not_an_id_finds_nothing(tmp_path, bad):
    (tmp_path / "projects" / "x").mkdir(parents=True)
    (tmp_path / "projects" / "x" / "y.jsonl").write_text("{}")
    assert find_transcript([tmp_path], bad) is None


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
