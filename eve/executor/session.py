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


def find_transcript(roots: Iterable[Path], session_id: str) -> Path | None:
    """The transcript file of `session_id` under any of the config roots."""
    if not re.fullmatch(r"[A-Za-z0-9-]{8,64}", session_id or ""):
        return None  # it names a file: nothing path-like from the agent's output gets through
    for root in roots:
        projects = root / "projects"
        if not projects.is_dir():
            continue
        for candidate in projects.glob(f"*/{session_id}.jsonl"):
            if candidate.is_file() and not candidate.is_symlink():
                return candidate
    return None


def read_transcript(path: Path, cap_bytes: int = DEFAULT_TRANSCRIPT_CAP_BYTES) -> bytes | None:
    """The transcript, gzipped; None when the file is over `cap_bytes` (the agent could write
    it: a worker must not read an arbitrarily large file into memory on its word). One
    bounded read, so a file that grows after a size check cannot get past the cap."""
    with path.open("rb") as f:
        data = f.read(cap_bytes + 1)
    return None if len(data) > cap_bytes else gzip.compress(data, compresslevel=6)


def restore_transcript(roots: Iterable[Path], cwd_inside: str, session_id: str, transcript_gz: bytes,
                       uid: int | None = None) -> list[Path]:
    """Write the transcript where Claude Code run in `cwd_inside` looks for it, under each root."""
    data = gzip.decompress(transcript_gz)
    written = []
    for root in dict.fromkeys(roots):
        target = root / "projects" / project_dir_name(cwd_inside) / f"{session_id}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if uid is not None:
            for p in (root, root / "projects", target.parent, target):
                os.lchown(p, uid, uid)
        written.append(target)
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


def tree_bytes(path: Path, cap_bytes: int) -> int | None:
    """What the tree under `path` adds up to as a tar stream (each entry's header, and the
    apparent size of each regular file; links not followed), or None as soon as that passes
    `cap_bytes`. Read from directory entries only, no file is opened; counting headers
    bounds a million empty files as well as one huge one."""
    total = 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                total += ENTRY_BYTES
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
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
    try:
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
            for entry in sorted(os.listdir(path)):
                tar.add(path / entry, arcname=entry, recursive=True)
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
