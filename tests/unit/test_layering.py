"""Core `eve` never imports the web stack, the TUI stack or the daemons (DESIGN §1).

Checked statically over every module under eve/ — including imports inside functions —
so a lazy import cannot sneak the web stack into the CLI or the worker. Dispatch from
the CLI to a daemon goes through importlib.import_module or a subprocess, on purpose.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("litestar", "textual", "uvicorn", "eve.daemons", "eve.tui")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _core_modules() -> list[Path]:
    return sorted((ROOT / "eve").rglob("*.py"))


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_imports_nothing_forbidden(path: Path) -> None:
    bad = [(line, name) for line, name in _imports(path)
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: core eve must not import {FORBIDDEN}"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import litestar\n    from textual.app import App\n")
    assert [n for _, n in _imports(sample)] == ["litestar", "textual.app"]


def test_importing_the_cli_loads_no_web_or_tui_stack() -> None:
    code = "import sys, eve.cli, eve.queue, eve.client; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    loaded = [m for m in out if m.split(".")[0] in ("litestar", "textual", "uvicorn") or
              m.startswith(("eve.daemons", "eve.tui"))]
    assert loaded == []
