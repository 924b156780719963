"""Find agent processes from outside, whatever sandbox they run in.

A sandboxed agent's cwd reads as `/workspace/<request id>` from the host (it lives in
another mount namespace), so the cwd alone does not find it. Every agent process —
bwrap, the variant, its tools — carries `EVE_REQUEST_ID` in its environment (the
worker builds the environment before exec), so the tests look for that, and for a cwd
under the worker's workspace root (sandbox `none`).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _request_ids_in(root: Path | None) -> set[str]:
    if root is None or not root.is_dir():
        return set()
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}


def agent_pids(workspace_root: Path | None = None, request_ids: Iterable[object] = ()) -> list[int]:
    """PIDs of agent processes of these requests, or of any request under `workspace_root`."""
    ids = {str(r) for r in request_ids} | _request_ids_in(workspace_root)
    marks = {f"EVE_REQUEST_ID={i}".encode() for i in ids}
    found: list[int] = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            if workspace_root is not None and cwd.startswith(str(workspace_root)):
                found.append(int(pid))
                continue
            if marks:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    env = set(fh.read().split(b"\0"))
                if env & marks:
                    found.append(int(pid))
        except OSError:
            continue
    return found


def kill_agents(workspace_root: Path | None = None, request_ids: Iterable[object] = ()) -> None:
    for pid in agent_pids(workspace_root, request_ids):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@contextmanager
def uid_readable_variant(script: str, prefix: str = "eve-uid-") -> Iterator[Path]:
    """A directory outside pytest's 0700 tmp tree whose bin/mclaude is `script`: in uid mode the
    agent resolves paths with its own uid. Yields the directory (bin/ goes first on PATH)."""
    outside = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        outside.chmod(0o755)
        (outside / "bin").mkdir(mode=0o755)
        variant = outside / "bin" / "mclaude"
        variant.write_text(script)
        variant.chmod(0o755)
        yield outside
    finally:
        shutil.rmtree(outside, ignore_errors=True)
