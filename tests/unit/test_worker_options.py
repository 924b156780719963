"""Every option the worker daemon parses is one `eve worker run` accepts and documents (#29:
`--api-url`, `--session-archive-mb`, `--session-workspace-max-mb` and `--kept-session-days`
existed only in the daemon's argparse, so `eve worker run --api-url` said "No such option")."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from eve.cli import app

DAEMON = Path(__file__).resolve().parents[2] / "daemons" / "worker" / "main.py"
INTERNAL = {"--health-host"}  # eve up's children bind 127.0.0.1; operators use --health-port


def test_every_daemon_option_is_an_eve_worker_run_option():
    daemon_flags = set(re.findall(r'add_argument\(\s*f?"(--[a-z-]+)', DAEMON.read_text()))
    daemon_flags |= {f"--agent-{n}" for n in ("memory-mb", "pids", "tmp-mb", "disk-mb", "max-minutes",
                                               "idle-minutes", "cpus")}  # made in a loop there
    assert "--api-url" in daemon_flags and len(daemon_flags) > 20
    help_text = CliRunner().invoke(app, ["worker", "run", "--help"], env={"COLUMNS": "400"}).output
    missing = sorted(f for f in daemon_flags - INTERNAL if f not in help_text)
    assert missing == [], f"the daemon parses these but `eve worker run` does not offer them: {missing}"
