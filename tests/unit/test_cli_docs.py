"""docs/cli.md is generated from the Typer app; it must not drift. Completion must work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eve.cli.docgen import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_current():
    assert DOC.read_text() == render(), "docs/cli.md is stale: run `python -m eve.cli.docgen > docs/cli.md`"


def test_every_command_is_documented():
    text = render()
    for cmd in ("eve request create", "eve result output", "eve status", "eve queue", "eve workers logs",
                "eve tail", "eve logs", "eve replay", "eve cancel", "eve config set", "eve doctor", "eve up",
                "eve api serve", "eve worker run", "eve db migrate", "eve db prune", "eve admin apikey create",
                "eve ui"):
        assert f"## `{cmd}`" in text, cmd


def test_shell_completion_script():
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    eve = Path(sys.executable).with_name("eve")  # the installed console script, as a shell would run it
    r = subprocess.run([str(eve), "--show-completion", "bash"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0 and "_eve_completion()" in r.stdout and "complete " in r.stdout
