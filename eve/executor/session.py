"""A Claude Code session that outlives its agent: the transcript and the workspace, as files.

When an agent ends its turn to wait (`eve wait`), the worker keeps what `--resume` needs:
the session transcript Claude Code wrote under the variant's config dir
(`<config>/projects/<cwd with every non-alphanumeric as '-'>/<session id>.jsonl`) and
the workspace, archived as a compressed tar up to a cap. Any worker can then put both
back at the paths Claude Code will look at: the sandbox shows the workspace at the same
path inside on every worker, and the transcript is filed under the cwd the resumed
agent will have. Pure file operations; the database side is eve.waiting.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eve.executor import safefs

DEFAULT_ARCHIVE_CAP_BYTES = 100 * 1024 * 1024  # compressed
DEFAULT_UNPACKED_CAP_BYTES = 1024 * 1024 * 1024  # what the workspace's files add up to
DEFAULT_TRANSCRIPT_CAP_BYTES = 256 * 1024 * 1024


class ArchiveTooLarge(ValueError):
    """A stored workspace whose files add up to more than the unpacked cap."""


@dataclass
class TurnInfo:
    """What a finished turn leaves for a possible resume (filled by eve.executor.run)."""

    session_id: str | None = None
    cwd_inside: str | None = None  # the agent's cwd as it saw it
    config_roots: list[Path] | None = None  # host dirs backing the variant's config dirs
    workspace: Path | None = None
    turn_dir: Path | None = None  # the turn's platform dir the config roots live in (trusted anchor)
    duration_ms: int = 0


@dataclass(frozen=True)
class Resume:
    """How to resume: the stored session and the prompt that tells the agent what happened."""

    session_id: str
    transcript: bytes  # gzip
    prompt: str


def project_dir_name(cwd: str) -> str:
    """Claude Code's per-project directory name: every character not [A-Za-z0-9] becomes '-'."""
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


@dataclass(frozen=True)
class Transcript:
    """A session transcript read back after a turn: gzipped (None: over the cap) and where it was."""

    data: bytes | None
    rel: str  # projects/<cwd>/<session>.jsonl, as stored with the session


def load_transcript(roots: Iterable[Path], session_id: str, *, anchor: Path | None,
                    cap_bytes: int = DEFAULT_TRANSCRIPT_CAP_BYTES, cwd_inside: str | None = None) -> Transcript | None:
    """The transcript of `session_id` under any config root, or None when there is none.

    The agent wrote into those roots: every component below `anchor` (the turn directory,
    which the agent cannot replace) is opened without following links, and only a regular
    file with one link is read (eve.executor.safefs). Without an anchor (no sandbox) each
    root's parent is the anchor. The project dir of `cwd_inside` is tried first.
    """
    if not re.fullmatch(r"[A-Za-z0-9-]{8,64}", session_id or ""):
        return None  # it names a file: nothing path-like from the agent's output gets through
    for root in dict.fromkeys(roots):
        if anchor is not None and _inside(root, anchor):
            base, rel_root = anchor, os.path.relpath(root, anchor)
        else:
            base, rel_root = root.parent, root.name
        projects = f"{rel_root}/projects"
        try:
            with safefs.opendir(base, projects) as pfd:
                names = [e.name for e in os.scandir(pfd) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        if cwd_inside is not None and project_dir_name(cwd_inside) in names:
            names.insert(0, project_dir_name(cwd_inside))
        for name in dict.fromkeys(names):
            rel = f"projects/{name}/{session_id}.jsonl"
            try:
                data = safefs.read_regular(base, f"{rel_root}/{rel}", cap_bytes)
            except OSError:
                continue
            return Transcript(None if data is None else gzip.compress(data, compresslevel=6), rel)
    return None


def _inside(path: Path, parent: Path) -> bool:
    p, q = os.path.normpath(path), os.path.normpath(parent)
    return p == q or p.startswith(q.rstrip("/") + "/")


def restore_transcript(roots: Iterable[Path], cwd_inside: str, session_id: str, transcript_gz: bytes,
                       uid: int | None = None) -> list[Path]:
    """Write the transcript where Claude Code run in `cwd_inside` looks for it, under each root.

    The roots are this turn's fresh private copies (nothing of the agent's is there yet);
    the write still goes through safefs, and what it makes is the agent's (`uid`).
    """
    data = gzip.decompress(transcript_gz)
    written = []
    for root in dict.fromkeys(roots):
        if not root.is_dir():
            root.mkdir(parents=True, mode=0o700)
            if uid is not None:
                os.chown(root, uid, uid)
        rel = f"projects/{project_dir_name(cwd_inside)}/{session_id}.jsonl"
        safefs.write_file(root, rel, data, mode=0o600, uid=uid, dir_mode=0o700)
        written.append(root / rel)
    return written


class _OverCap(Exception):
    pass


class _CappedBuffer(io.BytesIO):
    """A BytesIO that refuses to grow past `cap`: the archive stops at the cap, mid-file."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.cap:
            raise _OverCap
        return super().write(data)


ENTRY_BYTES = 512  # a tar header: what each file, directory or link adds before its data


def tree_bytes(path: Path, cap_bytes: int, *, blocks: bool = False) -> int | None:
    """What the tree under `path` adds up to as a tar stream (each entry's header, and the
    apparent size of each regular file; links not followed), or None as soon as that passes
    `cap_bytes`. Read from directory entries only, no file is opened; counting headers
    bounds a million empty files as well as one huge one. `blocks`: the disk the files
    take instead of their apparent sizes (the agents' disk limit, eve.executor.watch: a
    sparse terabyte costs nothing there, a real gigabyte does)."""
    total = 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                total += ENTRY_BYTES
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    total += st.st_blocks * 512 if blocks else st.st_size
                if total > cap_bytes:
                    return None
    return total


def archive_workspace(path: Path, cap_bytes: int = DEFAULT_ARCHIVE_CAP_BYTES,
                      unpacked_cap_bytes: int = DEFAULT_UNPACKED_CAP_BYTES) -> bytes | None:
    """The workspace as tar.gz, or None when it would be over either cap.

    The agent made these files, so both caps hold before any cost is paid: the files'
    apparent sizes are added up first (a sparse `truncate -s 1T` file compresses to
    almost nothing, but the worker would read every byte of it), and the compressed
    archive stops growing at `cap_bytes` even in the middle of one file.
    """
    if tree_bytes(path, unpacked_cap_bytes) is None:
        return None
    buf = _CappedBuffer(cap_bytes)

    def own_files_only(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        # a regular file with another name elsewhere may be a hard link to a file the agent
        # could not read: the worker would read it for the agent and hand it back next turn
        if info.isreg():
            try:
                if os.lstat(path / info.name).st_nlink > 1:
                    return None
            except OSError:
                return None
        return info

    try:
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
            for entry in sorted(os.listdir(path)):
                tar.add(path / entry, arcname=entry, recursive=True, filter=own_files_only)
    except _OverCap:
        return None
    return buf.getvalue()


def restore_workspace(archive: bytes, path: Path, unpacked_cap_bytes: int = DEFAULT_UNPACKED_CAP_BYTES) -> int:
    """Replace `path` with the archive's contents; returns how many members were skipped.

    The agent made those files: every member goes through tarfile's `data` filter (no
    absolute paths, nothing outside `path`, no links pointing out, no devices, no setuid
    bits), and one it refuses is skipped rather than failing the resume. An archive whose
    members add up to more than `unpacked_cap_bytes` raises ArchiveTooLarge before
    anything is written (a small archive can unpack to a full disk); the headers are read
    only until the sum passes the cap.
    """
    skipped = 0

    def only_data(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        nonlocal skipped
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError:
            skipped += 1
            return None

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        total = 0
        for member in tar:
            total += ENTRY_BYTES + member.size
            if total > unpacked_cap_bytes:
                raise ArchiveTooLarge(f"the stored workspace unpacks to more than {unpacked_cap_bytes} bytes")
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        tar.extractall(path, filter=only_data)
    return skipped


def resume_prompt(outcomes: list[str], workspace_kept: bool) -> str:
    """What the resumed agent reads: one line per thing it waited for, then what to do."""
    lines = ["You are resumed: everything you waited for has an outcome.", ""]
    lines += [f"- {line}" for line in outcomes] or ["- (no outcomes were recorded)"]
    if not workspace_kept:
        lines += ["", "Your workspace files were not kept while you waited (they were over the size cap): "
                      "only this conversation survived."]
    lines += ["", "Read the results you need with `eve request children` or `eve result get ID`, "
                  "combine them, and finish your task with one final answer."]
    return "\n".join(lines)
