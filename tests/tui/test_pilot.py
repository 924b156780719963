"""Keys and screens of the console, driven with Pilot against the fake client."""

from __future__ import annotations

from textual.widgets import DataTable, RichLog

from eve.tui.app import EveApp
from eve.tui.screens.dashboard import DashboardScreen, matches
from eve.tui.screens.modals import ConfirmModal, HelpScreen, NewRequestModal
from eve.tui.screens.request import RequestScreen
from eve.tui.screens.workers import WorkerLogScreen, WorkersScreen
from tests.tui.conftest import make_app
from tests.tui.fakes import FakeClient, default_requests, make_events


def rows(app: EveApp) -> int:
    return app.screen.query_one("#requests", DataTable).row_count


async def test_filter_narrows_the_table():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert rows(app) == 8
        await pilot.press("slash", *"status:failed", "enter")
        await pilot.pause()
        assert rows(app) == 2
        await pilot.press("slash")
        await pilot.pause()
        await pilot.press(*"type:code-review", "enter")  # the old filter is selected on focus: typing replaces it
        await pilot.pause()
        assert rows(app) == 2
        await pilot.press("escape")
        await pilot.pause()
        assert rows(app) == 8


def test_filter_syntax():
    req = default_requests()[1]
    assert matches(req, "status:failed") and matches(req, "type:code-review auth")
    assert not matches(req, "status:failed type:general") and not matches(req, "nothing-like-this")


async def test_enter_opens_a_request_and_escape_goes_back():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RequestScreen) and app.screen.request_id == client.requests[1]["id"]
        timeline = app.screen.query_one("#timeline", RichLog)
        assert len(timeline.lines) >= 9
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("w")
        await pilot.pause()
        assert isinstance(app.screen, WorkersScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, WorkerLogScreen) and ("worker_logs", "worker-vps1-4241") in client.calls
        await pilot.press("escape", "escape", "question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


async def test_replay_after_confirm_creates_a_request_and_copies_ids():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        original = app.screen.request_id
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await pilot.pause(0.3)
        assert ("replay", original) in client.calls
        assert isinstance(app.screen, RequestScreen) and app.screen.request_id == client.requests[0]["id"]
        assert client.requests[0]["replayOf"] == original
        await pilot.press("y")  # copy the new id (OSC 52)
        assert app.clipboard == client.requests[0]["id"]


async def test_cancel_needs_confirmation_and_n_declines():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("enter", "c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await pilot.pause()
        assert client.count("cancel") == 0 and isinstance(app.screen, RequestScreen)
        await pilot.press("c", "y")
        await pilot.pause(0.3)
        assert client.count("cancel") == 1


async def test_read_only_refuses_replay_cancel_and_new():
    client = FakeClient()
    app = make_app(client, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, NewRequestModal)
        await pilot.press("down", "enter")
        await pilot.pause()
        await pilot.press("r", "y", "c", "y")
        await pilot.pause()
        assert client.count("replay") == 0 and client.count("cancel") == 0 and client.count("create_request") == 0
        assert isinstance(app.screen, RequestScreen)


async def test_new_request_form_submits_and_opens_the_new_request():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause(0.3)
        assert isinstance(app.screen, NewRequestModal)
        await pilot.press(*"hello agent")
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
        assert ("create_request", {"worker_type": "general", "prompt": "hello agent", "config": None}) in client.calls
        assert isinstance(app.screen, RequestScreen) and app.screen.request_id == client.requests[0]["id"]


async def test_pause_stops_fetching_and_refresh_rate_keys():
    client = FakeClient()
    app = make_app(client, refresh_s=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("p")
        assert app.paused
        before = client.count("queue")
        await pilot.pause(2.5)
        assert client.count("queue") == before
        await pilot.press("p")
        await pilot.pause(0.3)
        assert client.count("queue") > before
        await pilot.press("plus", "plus")
        assert app.refresh_s == 1.0  # the floor
        await pilot.press("minus")
        assert app.refresh_s == 2.0


async def test_follow_mode_turns_off_and_on():
    client = FakeClient(firehose_events=make_events(default_requests()[0]["id"]))
    app = make_app(client, live=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        dash = app.screen
        assert isinstance(dash, DashboardScreen)
        log = dash.query_one("#tail", RichLog)
        assert len(log.lines) == 9 and dash.following
        await pilot.press("f")
        assert not dash.following and not log.auto_scroll
        await pilot.press("f")
        assert dash.following and log.auto_scroll


async def test_api_down_keeps_last_data_and_says_so():
    client = FakeClient()
    app = make_app(client, refresh_s=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        assert rows(app) == 8 and app.connection == "live"
        client.down = True
        app.refresh_data()
        await pilot.pause(0.3)
        assert app.connection == "reconnecting" and "connection refused" in (app.last_error or "")
        assert rows(app) == 8  # the last data stays
        assert "reconnecting" in str(app.header_text())
        client.down = False
        app.refresh_data()
        await pilot.pause(0.3)
        assert app.connection == "live"


async def test_command_palette_opens_a_request_by_id():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("colon")
        await pilot.pause()
        await pilot.press(*f"req {client.requests[2]['id']}")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RequestScreen) and app.screen.request_id == client.requests[2]["id"]


async def test_load_more_pages_with_the_cursor():
    from tests.tui.fakes import make_request

    client = FakeClient(requests=[make_request(i + 1, "completed") for i in range(230)])
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert rows(app) == 100
        table = app.screen.query_one("#requests", DataTable)
        table.move_cursor(row=98)
        await pilot.pause(0.3)
        assert rows(app) == 200 and {"cursor": "100", "worker_type": None} in [c[1] for c in client.calls]
