"""`eve schedule ...` as a person runs it, against a real API and PostgreSQL (no agent needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture
def cli(api, alice, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVE_")}
    env.update({"XDG_CONFIG_HOME": str(tmp_path / "config"), "NO_COLOR": "1", "COLUMNS": "200",
                "EVE_API_URL": api.url, "EVE_API_KEY": alice.tenant.api_key})

    def eve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eve.cli", *args], capture_output=True, text=True, env=env,
                              timeout=60)
    return eve


def test_create_list_show_pause_resume_run_delete(cli, alice):
    r = cli("schedule", "create", "--name", "nightly", "--cron", "0 3 * * *", "--tz", "Europe/Berlin",
            "-t", "code-review", "-p", "Review dependency updates", "--context", '{"repo": "acme/api"}')
    assert r.returncode == 0, r.stderr
    assert "created schedule nightly" in r.stdout and "03:00 CE" in r.stdout  # CET or CEST, local time

    r = cli("schedule", "list")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "CRON", "TZ", "TYPE", "NEXT", "FIRE", "LAST", "RESULT", "PAUSED"]
    assert row.startswith("nightly") and "0 3 * * *" in row and "Europe/Berlin" in row and row.rstrip().endswith("no")

    listed = json.loads(cli("schedule", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["nightly"] and listed[0]["context"] == {"repo": "acme/api"}

    shown = cli("schedule", "show", "nightly")
    assert shown.returncode == 0 and "next fires" in shown.stdout and shown.stdout.count("03:00 CE") == 5

    r = cli("schedule", "pause", "nightly")
    assert r.returncode == 0 and "paused nightly" in r.stdout
    assert cli("schedule", "list").stdout.splitlines()[1].rstrip().endswith("yes")
    assert json.loads(cli("schedule", "show", "nightly", "--json").stdout)["nextFireTimes"] == []

    r = cli("schedule", "run", "nightly", "--json")
    assert r.returncode == 0, r.stderr
    req = json.loads(r.stdout)
    assert req["scheduleId"] == listed[0]["id"] and req["prompt"] == "Review dependency updates"

    got = cli("request", "get", req["id"])
    assert got.returncode == 0 and f"schedule  {listed[0]['id']}" in got.stdout

    r = cli("schedule", "resume", "nightly")
    assert r.returncode == 0 and "resumed nightly; next:" in r.stdout
    assert "manual" in cli("schedule", "show", "nightly").stdout

    assert cli("schedule", "delete", "nightly").returncode == 0
    r = cli("schedule", "show", "nightly")
    assert r.returncode == 1 and "schedule nightly not found" in r.stderr and "Traceback" not in r.stderr
    assert "no schedules" in cli("schedule", "list").stdout


@pytest.mark.parametrize(("args", "needle"), [
    (["--cron", "61 * * * *"], "bad minute field '61'"),
    (["--cron", "0 3 * *"], "needs 5"),
    (["--cron", "0 3 * * * *"], "6 fields"),
    (["--cron", "@fortnightly"], "unknown cron macro"),
    (["--cron", "0 3 * * *", "--tz", "Mars/Olympus"], "IANA"),
    (["--cron", "0 3 * * *", "--overlap", "maybe"], "--overlap"),
])
def test_bad_cron_or_zone_is_a_usage_error_naming_the_field(cli, args, needle):
    r = cli("schedule", "create", "--name", "x", "-t", "general", "-p", "p", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_api_side_refusals_are_readable(cli):
    assert cli("schedule", "create", "--name", "dup", "--cron", "@daily", "-t", "general", "-p", "p").returncode == 0
    r = cli("schedule", "create", "--name", "dup", "--cron", "@daily", "-t", "general", "-p", "p")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = cli("schedule", "create", "--name", "wt", "--cron", "@daily", "-t", "nope", "-p", "p")
    assert r.returncode == 2 and "Invalid worker type: nope" in r.stderr
    r = cli("schedule", "run", "ghost")
    assert r.returncode == 1 and "schedule ghost not found" in r.stderr
