"""A private directory per request, with the worker type's skills where Claude Code finds them,
and beside it (never inside it) a fresh directory of the platform's own files for one turn.

Two trees per request under the workspace root:

* ``<root>/<request id>/`` — the workspace: the agent's, writable by it, kept across the
  turns of a session (reused in place, or archived and restored). It is hostile data:
  the worker only reaches into it through eve.executor.safefs.
* ``<root>/.eve-turns/<request id>/`` — the turn directory: the agent's private HOME, its
  private copies of the variant's config dirs, passwd/group for the sandbox. Made anew,
  empty, for every turn and removed after it: nothing the agent left there in one turn is
  read or written through by the worker in the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from eve.errors import EveError
from eve.executor import safefs

TURNS = ".eve-turns"


@dataclass(frozen=True, slots=True)
class Workspace:
    path: Path
    home: Path  # the agent's HOME source, inside `turn`
    turn: Path  # this turn's platform files (fresh)
    skills: list[str]
    missing_skills: list[str]


def skill_source(name: str) -> Path | None:
    ref = resources.files("eve.skills").joinpath(name, "SKILL.md")
    path = Path(str(ref))
    return path if path.is_file() else None


def turn_dir(root: Path, request_id: str) -> Path:
    return root / TURNS / request_id


def prepare(root: Path, request_id: str, attempt: int, skills: list[str], *, keep: bool = False) -> Workspace:
    """`<root>/<request id>/` (cleared for a new attempt unless `keep`: a resumed session's
    workspace) with `.claude/skills/<name>/SKILL.md`, and a fresh turn directory.

    The skills are written through safefs: a resumed workspace may hold a `.claude` that is
    a link to anywhere, or a `SKILL.md` hard-linked to another file; neither is followed
    (a link on the way is replaced by a real directory).
    """
    path = root / request_id
    try:
        if attempt > 1 and not keep:
            safefs.remove_tree(path)
        path.mkdir(parents=True, exist_ok=True)
        turns = root / TURNS
        turns.mkdir(exist_ok=True)
        turns.chmod(0o711)  # uid mode: each agent's uid walks through to its own HOME
        turn = safefs.fresh_dir(turn_dir(root, request_id), mode=0o711)
        home = turn / "home"
        home.mkdir(mode=0o700)
        loaded, missing = [], []
        for name in skills:
            src = skill_source(name)
            if src is None:
                missing.append(name)
                continue
            # a link the agent left on the way (`.claude` -> /etc) is replaced by a real directory
            safefs.write_file(path, f".claude/skills/{name}/SKILL.md", src.read_bytes(), replace=True)
            loaded.append(name)
    except OSError as exc:
        raise EveError(f"cannot prepare workspace {path}: {exc.strerror or exc}", code="workspace_error") from exc
    return Workspace(path=path, home=home, turn=turn, skills=loaded, missing_skills=missing)


def remove_turn(root: Path, request_id: str) -> None:
    """The turn directory goes once the worker has read what it needs from it (the transcript)."""
    safefs.remove_tree(turn_dir(root, request_id))


def skills_for(worker_type_config: dict[str, Any]) -> list[str]:
    return [str(s) for s in worker_type_config.get("skills") or []]
