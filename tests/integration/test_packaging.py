"""The built wheel carries every subpackage and the SQL/skills data (DESIGN §1).

The wheel is installed (without dependencies) into a scratch directory and imported
with `python -S`, so neither the editable install's finder nor the source tree can
stand in for what the wheel really contains; dependencies come from the venv's
site-packages directory, added explicitly.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    [whl] = out.glob("eve_horizon-*.whl")
    return whl


def test_wheel_contains_sql_skills_and_every_subpackage(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "eve/__init__.py", "eve/cli/__init__.py", "eve/daemons/__init__.py", "eve/daemons/api/__init__.py",
        "eve/daemons/worker/__init__.py", "eve/tui/__init__.py", "eve/sql/queries.sql",
        "eve/sql/migrations/0001_initial.sql",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
    for skill in (ROOT / "skills").glob("*/SKILL.md"):
        assert f"eve/skills/{skill.parent.name}/SKILL.md" in names
    assert not any(n.startswith("tests/") for n in names)


def test_installed_wheel_imports_and_finds_its_data(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    deps = sysconfig.get_paths()["purelib"]
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "import eve, eve.daemons, eve.daemons.api, eve.daemons.worker, eve.tui, eve.sql, eve.skills\n"
        "assert eve.__file__.startswith(sys.argv[1]), eve.__file__\n"
        "from eve.migrate import load_migrations\n"
        "from eve.queries import load\n"
        "from importlib import resources\n"
        "print(len(load_migrations()), len(load()) > 10, resources.files('eve.skills').joinpath('general').is_dir())\n"
    )
    run = subprocess.run([sys.executable, "-S", "-c", code, str(target), deps], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    n_migrations = len(list((ROOT / "sql" / "migrations").glob("*.sql")))
    has_general_skill = (ROOT / "skills" / "general" / "SKILL.md").exists()
    assert run.stdout.split() == [str(n_migrations), "True", str(has_general_skill)]
