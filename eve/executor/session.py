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

DEFAULT_ARCHIVE_CAP_BYTES = 100 * 1024 * 1024


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


def read_transcript(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=6)


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


def archive_workspace(path: Path, cap_bytes: int = DEFAULT_ARCHIVE_CAP_BYTES) -> bytes | None:
    """The workspace as tar.gz, or None when the archive would be over `cap_bytes`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for entry in sorted(os.listdir(path)):
            tar.add(path / entry, arcname=entry, recursive=True)
            if buf.tell() > cap_bytes:
                return None
    return None if buf.tell() > cap_bytes else buf.getvalue()


def restore_workspace(archive: bytes, path: Path) -> None:
    """Replace `path` with the archive's contents (the `data` filter refuses links out, devices, setuid)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(path, filter="data")


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
