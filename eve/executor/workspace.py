"""A private directory per request, with the worker type's skills where Claude Code finds them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from eve.errors import EveError


@dataclass(frozen=True, slots=True)
class Workspace:
    path: Path
    home: Path
    skills: list[str]
    missing_skills: list[str]


def skill_source(name: str) -> Path | None:
    ref = resources.files("eve.skills").joinpath(name, "SKILL.md")
    path = Path(str(ref))
    return path if path.is_file() else None


def prepare(root: Path, request_id: str, attempt: int, skills: list[str], *, keep: bool = False) -> Workspace:
    """`<root>/<request id>/` (cleared for a new attempt unless `keep`: a resumed session's
    workspace) with `.claude/skills/<name>/SKILL.md`.

    The agent's HOME is `<workspace>/.home`, so two agents never share Claude Code state
    in ~/.claude; a variant wrapper keeps its own provider config (CLAUDE_CONFIG_DIR).
    """
    path = root / request_id
    try:
        if path.exists() and attempt > 1 and not keep:
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        home = path / ".home"
        home.mkdir(exist_ok=True)
        loaded, missing = [], []
        for name in skills:
            src = skill_source(name)
            if src is None:
                missing.append(name)
                continue
            dest = path / ".claude" / "skills" / name
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / "SKILL.md")
            loaded.append(name)
    except OSError as exc:
        raise EveError(f"cannot prepare workspace {path}: {exc.strerror or exc}", code="workspace_error") from exc
    return Workspace(path=path, home=home, skills=loaded, missing_skills=missing)


def skills_for(worker_type_config: dict[str, Any]) -> list[str]:
    return [str(s) for s in worker_type_config.get("skills") or []]
