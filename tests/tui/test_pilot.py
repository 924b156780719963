"""Keys and screens of the console, driven with Pilot against the fake client.

No fixed pauses: every step waits for the condition it needs (`until`), with a deadline.
The tests named after a defect of issue #18 failed on the console before its second pass.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import timedelta

from rich.console import Console
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RichLog, Static

from eve.tui.app import EveApp, parse_filter
from eve.tui.screens.dashboard import DashboardScreen
from eve.tui.screens.modals import ConfirmModal, EditPromptModal, HelpScreen, NewRequestModal
from eve.tui.screens.request import RequestScreen
from eve.tui.screens.workers import WorkerLogScreen, WorkersScreen
from eve.tui.widgets.format import spark
from tests.tui.conftest import make_app
from tests.tui.fakes import NOW, FakeClient, default_requests, iso, make_events, make_request


async def until(pilot: Pilot[None], predicate: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not _holds(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


def _holds(predicate: Callable[[], object]) -> bool:
    try:
        return bool(predicate())
    except NoMatches:  # a screen that is still being composed
        return False


def table(app: EveApp) -> DataTable:
    return app.screen.query_one("#requests", DataTable)


def rows(app: EveApp) -> int:
    return table(app).row_count


def cursor_key(t: DataTable) -> str:
    return str(t.coordinate_to_cell_key((t.cursor_row, 0)).row_key.value)


async def started(pilot: Pilot[None], app: EveApp, n: int | None = None) -> None:
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.fetch_count >= 1
                and rows(app) == (n if n is not None else rows(app)) and rows(app) > 0, "the first refresh")


async def refreshed(pilot: Pilot[None], app: EveApp) -> None:
    before = app.fetch_count
    app.refresh_data()
    await until(pilot, lambda: app.fetch_count > before, "a refresh")
    await pilot.pause()


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text (rich tables included)."""
    console = Console(width=max(widget.size.width, 40), record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


# -- basics ---------------------------------------------------------------------------------------

async def test_search_narrows_the_table_on_the_server():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 8)
        await pilot.press("slash", *"status:failed", "enter")
        await until(pilot, lambda: rows(app) == 2, "the failed requests only")
        assert any(c[0] == "list_requests" and c[1]["status"] == "failed" for c in client.calls)
        await pilot.press("slash")
        await until(pilot, lambda: app.screen.query_one("#filter", Input).has_focus, "the search box")
        await pilot.press(*"type:code-review", "enter")  # the old filter is selected on focus: typing replaces it
        await until(pilot, lambda: rows(app) == 2, "the code-review requests")
        await pilot.press("escape")
        await until(pilot, lambda: rows(app) == 8, "all requests again")


def test_filter_syntax():
    params = parse_filter("status:failed,cancelled type:code-review org:acme since:1h auth module", NOW)
    assert params == {"status": "failed,cancelled", "worker_type": "code-review", "org": "acme",
                      "since": iso(NOW - timedelta(hours=1)), "q": "auth module"}
    for bad in ("status:broken", "since:yesterday", "sort:sideways"):
        try:
            parse_filter(bad, NOW)
        except ValueError as exc:
            assert str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


async def test_enter_opens_a_request_and_escape_goes_back():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "the request screen")
        assert app.screen.request_id == client.requests[1]["id"]
        await until(pilot, lambda: len(app.screen.query_one("#timeline", RichLog).lines) >= 9, "the timeline")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, WorkersScreen), "the workers screen")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WorkerLogScreen), "a worker's log")
        await until(pilot, lambda: ("worker_logs", app.screen.worker_id) in client.calls, "the log fetch")
        await pilot.press("escape", "escape", "question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")


async def test_replay_after_confirm_creates_a_request_and_copies_ids():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "the request screen")
        original = app.screen.request_id
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirm modal")
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.request_id != original,
                    "the new request")
        assert ("replay", original) in client.calls
        assert app.screen.request_id == client.requests[0]["id"] and client.requests[0]["replayOf"] == original
        await pilot.press("y")  # copy the new id (OSC 52)
        assert app.clipboard == client.requests[0]["id"]


async def test_replay_with_an_edited_prompt():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.request is not None,
                    "the loaded request")
        original = app.screen.request_id
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditPromptModal), "the prompt editor")
        await pilot.press(*" again", "ctrl+s")
        await until(pilot, lambda: any(c[0] == "replay" and isinstance(c[1], tuple) for c in client.calls),
                    "the replay")
        assert ("replay", (original, "Review the auth module #2 again")) in client.calls, [
            c for c in client.calls if c[0] == "replay"]


async def test_cancel_needs_confirmation_and_n_declines():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.request is not None,
                    "the request screen")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirm modal")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "back on the request")
        assert client.count("cancel") == 0
        await pilot.press("c", "y")
        await until(pilot, lambda: client.count("cancel") == 1, "the cancel call")


async def test_read_only_refuses_replay_cancel_and_new():
    client = FakeClient()
    app = make_app(client, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("n")
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.request is not None,
                    "the request screen")
        await pilot.press("r", "y", "c", "y", "e")
        await pilot.pause()
        assert client.count("replay") == 0 and client.count("cancel") == 0 and client.count("create_request") == 0
        assert isinstance(app.screen, RequestScreen)


async def test_new_request_form_submits_and_opens_the_new_request():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewRequestModal), "the form")
        await until(pilot, lambda: client.count("worker_types") == 1, "the worker types")
        await pilot.press(*"hello agent")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "the new request")
        assert ("create_request", {"worker_type": "general", "prompt": "hello agent", "config": None}) in client.calls
        assert app.screen.request_id == client.requests[0]["id"]


async def test_pause_stops_fetching_and_refresh_rate_keys():
    client = FakeClient()
    app = make_app(client, refresh_s=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("p")
        assert app.paused
        before = client.count("queue")
        app.refresh_data()  # what the timer would do: a paused console does not fetch
        await pilot.pause()
        assert client.count("queue") == before
        await pilot.press("p")
        await until(pilot, lambda: client.count("queue") > before, "a fetch after resume")
        await pilot.press("plus", "plus")
        assert app.refresh_s == 1.0  # the floor
        await pilot.press("minus")
        assert app.refresh_s == 2.0


async def test_follow_mode_turns_off_and_on():
    client = FakeClient(firehose_events=make_events(default_requests()[0]["id"]))
    app = make_app(client, live=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        dash = app.screen
        assert isinstance(dash, DashboardScreen)
        log = dash.query_one("#tail", RichLog)
        await until(pilot, lambda: len(log.lines) >= 9, "the tail")
        assert dash.following
        await pilot.press("f")
        assert not dash.following and not log.auto_scroll
        await pilot.press("f")
        assert dash.following and log.auto_scroll


async def test_api_down_keeps_last_data_and_says_so():
    client = FakeClient()
    app = make_app(client, refresh_s=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 8)
        assert app.connection == "live"
        client.down = True
        app.refresh_data()
        await until(pilot, lambda: app.connection == "reconnecting", "the reconnecting state")
        assert "connection refused" in (app.last_error or "")
        assert rows(app) == 8  # the last data stays
        assert "reconnecting" in str(app.header_text())
        client.down = False
        app.refresh_data()
        await until(pilot, lambda: app.connection == "live", "live again")


async def test_command_palette_opens_a_request_by_id():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("colon")
        await pilot.press(*f"req {client.requests[2]['id']}")
        await until(pilot, lambda: "req " in str(app.screen.query("OptionList").first().get_option_at_index(0).prompt)
                    if app.screen.query("OptionList") and app.screen.query("OptionList").first().option_count
                    else False, "the palette hit")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "the request")
        assert app.screen.request_id == client.requests[2]["id"]


async def test_load_more_pages_with_the_cursor():
    client = FakeClient(requests=[make_request(i + 1, "completed") for i in range(230)])
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 100)
        table(app).move_cursor(row=98)
        await until(pilot, lambda: rows(app) == 200, "the second page")
        assert any(c[0] == "list_requests" and c[1]["cursor"] == "100" for c in client.calls)


async def test_the_fake_answers_404_like_the_api():
    from eve.client import ApiError

    try:
        await FakeClient().get_request("00000000-0000-4000-8000-00000000dead")
    except ApiError as exc:
        assert exc.status == 404
    else:
        raise AssertionError("no error for an unknown request")


async def test_request_view_lists_parent_and_children_and_enter_opens_them():
    client = FakeClient()
    parent, child = client.requests[1], client.requests[2]
    child["parentId"] = parent["id"]
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        app.open_request(parent["id"])
        await until(pilot, lambda: isinstance(app.screen, RequestScreen)
                    and app.screen.query_one("#family").option_count == 1, "the child in the tree list")
        family = app.screen.query_one("#family")
        assert family.get_option_at_index(0).id == child["id"]
        family.focus()
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.request_id == child["id"],
                    "the child's request view")
        await until(pilot, lambda: app.screen.query_one("#family").option_count == 1, "its parent in the list")
        assert app.screen.query_one("#family").get_option_at_index(0).id == parent["id"]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen.request_id == parent["id"], "back on the parent")
