"""`eve ui` against a real API, worker and PostgreSQL: in Pilot, and in a real terminal (tmux)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, RichLog

from eve.client import EveClient
from eve.tui.app import EveApp
from eve.tui.screens.request import RequestScreen
from tests.support.apiserver import start_api
from tests.support.tenants import make_tenant
from tests.support.tmux import Tmux
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
async def live_stack(db_url, tmp_path, variant_bin, conn):
    tenant = await make_tenant(conn, "tui")
    api = start_api(db_url, tmp_path)
    worker = start_worker(db_url, tmp_path, path_prepend=variant_bin)
    try:
        api.wait_ready()
        worker.wait_healthy()
        yield api, tenant
    finally:
        worker.stop()
        api.stop()


async def wait_until(pilot, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


async def test_dashboard_follows_a_real_request(live_stack):
    api, tenant = live_stack
    async with EveClient(api.url, api_key=tenant.api_key) as client:
        app = EveApp(client, refresh_s=1.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.connection == "live", 15, "the first fetch")
            created = await client.create_request("general", 'Echo "smoke test passed" using the Bash tool')
            table = app.screen.query_one("#requests", DataTable)

            def status_shown() -> str:
                try:
                    return str(table.get_cell(created["id"], "status"))
                except Exception:  # noqa: BLE001 - not in the table yet
                    return ""

            await wait_until(pilot, lambda: status_shown() != "", 15, "the request to appear")
            await wait_until(pilot, lambda: status_shown() == "completed", 60, "the request to complete")
            tail = app.screen.query_one("#tail", RichLog)
            await wait_until(pilot, lambda: any(created["id"][:8] in str(line.text) for line in tail.lines), 15,
                             "its events in the live tail")
            table.move_cursor(row=table.get_row_index(created["id"]))
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RequestScreen), 10, "the drill-down")
            timeline = app.screen.query_one("#timeline", RichLog)
            await wait_until(pilot, lambda: any("Tool call: Bash" in "".join(s.text for s in line._segments)
                                                for line in timeline.lines), 15, "the tool call in the timeline")
            await pilot.press("q")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
async def test_real_terminal_session_in_tmux(live_stack, tmp_path: Path):
    api, tenant = live_stack
    env = {**os.environ, "EVE_API_URL": api.url, "EVE_API_KEY": tenant.api_key, "TERM": "xterm-256color",
           "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    async with EveClient(api.url, api_key=tenant.api_key) as client:
        await client.create_request("data", "[[text: waiting for a data worker]]")
    with Tmux("eve-ui-test") as term:
        term.start(f"{sys.executable} -m eve.cli ui --refresh 1s; echo EXITED-$?; sleep 30", env)
        out = term.wait_screen("● live")
        assert "Queue" in out and "Workers" in out and "Requests 1 of 1" in out and api.url in out
        term.keys("/")
        term.wait_screen("search:")
        term.keys("status:pending", "Enter")
        term.wait_screen("search: status:pending")
        term.keys("?")
        out = term.wait_screen("Keys —")
        assert "Search" in out and "Quit" in out
        term.keys("Escape")  # tmux holds a lone Escape for its escape-time before passing it on
        term.wait_gone("Keys —")
        term.keys("q")
        out = term.wait_screen("EXITED-0")
        assert "Queue" not in out  # the terminal is back to the shell, the TUI gone


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
async def test_operator_walk_at_80x24(db_url, tmp_path: Path, variant_bin, conn):
    """Dashboard → search the history → a request → replay it → workers → drain one, as a person would."""
    tenant = await make_tenant(conn, "ops", operator=True)
    api = start_api(db_url, tmp_path)
    worker = start_worker(db_url, tmp_path, path_prepend=variant_bin, env={"EVE_LEASE_SECONDS": "6"})
    term = Tmux("eve-ui-walk", width=80, height=24)
    try:
        api.wait_ready()
        wid = worker.wait_healthy()["worker_id"]
        async with EveClient(api.url, api_key=tenant.api_key) as client:
            done = await client.create_request("general", 'Echo "walk" using the Bash tool')
            for i in range(3):
                await client.create_request("playwright", f"[[text: history {i}]]")  # no such worker: pending
            deadline = time.monotonic() + 90
            while (await client.get_request(done["id"]))["status"] != "completed":
                assert time.monotonic() < deadline, "the request never completed"
                await asyncio.sleep(0.3)
        env = {**os.environ, "EVE_API_URL": api.url, "EVE_API_KEY": tenant.api_key, "TERM": "xterm-256color",
               "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
        term.start(f"{sys.executable} -m eve.cli ui --refresh 1s; sleep 30", env)
        wait_screen, keys, screen = term.wait_screen, term.keys, term.screen

        out = wait_screen("● live")
        assert "Requests 4 of 4" in out and "playwright: 3 pending and no live worker" in out
        keys("/")
        wait_screen("search:")
        keys("status:completed", "Enter")
        wait_screen("Requests 1 of 1")
        keys("Enter")
        out = wait_screen(f"Request {done['id']}")  # the whole id fits at 80 columns
        wait_screen("completed")
        keys("r")
        wait_screen("as a new request?")
        keys("y")
        deadline = time.monotonic() + 20  # the replay opens: another request's id in the title
        while done["id"] in screen() or "Request " not in screen():
            assert time.monotonic() < deadline, f"the replay never opened:\n{screen()}"
            time.sleep(0.1)
        keys("Escape")
        wait_screen("Requests")
        keys("w")
        wait_screen("d drain")
        keys("d")
        wait_screen("Drain ")
        keys("y")
        worker.proc.wait(timeout=30)  # it notices within a heartbeat (2 s here), drains and exits
        assert worker.proc.returncode == 0 and "drain requested by an operator" in worker.output()
        wait_screen("stopped", timeout=15)
    finally:
        term.close()
        worker.stop()
        api.stop()


def wait_match(term: Tmux, pattern: str, timeout: float = 20) -> str:
    """The screen once `pattern` (a regex) matches it; fails with the screen after `timeout`."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, out := term.screen()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} never matched the screen:\n{out}")
        time.sleep(0.1)
    return out


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_burst_typed_search_and_a_bad_org_filter_in_tmux(db_url, tmp_path: Path, conn, size):
    """#36 in a real terminal: `/billing` sent by one send-keys fills the search (its `n` never
    opens the New request form); `org:nope` is a message under the search while the header
    stays live and the queue panel keeps updating. An API alone: nothing here needs to run."""
    tenant = await make_tenant(conn, "burst", operator=True)
    api = start_api(db_url, tmp_path)
    term = Tmux("eve-ui-burst", width=size[0], height=size[1])
    try:
        api.wait_ready()
        async with EveClient(api.url, api_key=tenant.api_key) as client:
            for prompt in ("billing export", "billing retry", "other work"):
                await client.create_request("playwright", f"[[text: {prompt}]]")  # no worker: they stay pending
            env = {**os.environ, "EVE_API_URL": api.url, "EVE_API_KEY": tenant.api_key, "TERM": "xterm-256color",
                   "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
            term.start(f"{sys.executable} -m eve.cli ui --refresh 1s; sleep 30", env)
            term.wait_screen("Requests 3 of 3")
            term.keys("/billing")  # one send-keys: the whole burst reaches the app at once
            term.keys("Enter")
            out = term.wait_screen("search: billing")
            assert "Requests 2 of 2" in term.wait_screen("Requests 2 of 2")
            assert "New request" not in out
            term.keys("/org:nope")  # the box selects its text when it opens: the burst replaces it
            term.keys("Enter")
            out = term.wait_screen("organization 'nope' not found")
            assert "● live" in out and "reconnecting" not in out
            await client.create_request("data", "[[text: queued while the filter is bad]]")
            out = wait_match(term, r"data\s+1\b")  # the queue panel still updates
            assert "● live" in out and "organization 'nope' not found" in out
    finally:
        term.close()
        api.stop()
