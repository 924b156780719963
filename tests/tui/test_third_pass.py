"""One test per defect of issue #36 (eve ui, third pass) that the console itself shows.

Pilot against the fake client, at the sizes of the operator trial. Each was seen failing
on the console before the fix that it names (the commit message says which).
"""

from __future__ import annotations

from textual import events
from textual.command import CommandPalette
from textual.widgets import Input

from eve.tui.app import EveApp
from eve.tui.prefetch import PAGE
from eve.tui.screens.dashboard import DashboardScreen
from eve.tui.screens.modals import NewRequestModal
from eve.tui.screens.request import RequestScreen
from eve.tui.screens.workers import WorkerLogScreen
from eve.tui.widgets.table import StableTable
from tests.tui.conftest import make_app
from tests.tui.fakes import FakeClient, make_request
from tests.tui.test_pilot import cursor_key, refreshed, started, table, until

KEY_NAMES = {"/": "slash", ":": "colon", " ": "space", "\r": "enter", "\x1b": "escape"}


def burst(app: EveApp, text: str) -> None:
    """Every key of `text` into the driver at once, as a paste or a lagging SSH link delivers
    them: Pilot's `press` waits for the app to go idle between two keys, which hides the bug."""
    driver = app._driver
    assert driver is not None
    for ch in text:
        key = KEY_NAMES.get(ch, ch)
        char = {"enter": "\r", "escape": "\x1b"}.get(key, ch)
        event = events.Key(key, char)
        event.set_sender(app)
        driver.send_message(event)


# 3. keys typed in one burst after `/` or `:` are text, never shortcuts
async def test_3_a_burst_after_slash_fills_the_search_and_opens_nothing():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 8)
        dash = app.screen
        burst(app, "/billing")
        box = dash.query_one("#filter", Input)
        await until(pilot, lambda: box.value == "billing" or not isinstance(app.screen, DashboardScreen),
                    "the burst to be handled")
        assert not isinstance(app.screen, NewRequestModal), "the `n` of the burst opened the New request form"
        assert box.value == "billing" and app.focused is box
        burst(app, "\r")
        await until(pilot, lambda: dash.filter_text == "billing", "the search to apply")


async def test_3_a_burst_after_colon_fills_the_palette_and_quits_nothing():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 8)
        burst(app, ":quit workers")  # `q` quits and `w` opens the workers screen when they leak
        await until(pilot, lambda: isinstance(app.screen, CommandPalette)
                    and app.screen.query_one(Input).value == "quit workers", "the palette to get every key")
        assert app.return_code is None and app.is_running


async def test_3_a_burst_after_slash_in_the_worker_log_filters_without_the_slash():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 8)
        app.push_screen(WorkerLogScreen("worker-vps1-4241"))
        await until(pilot, lambda: isinstance(app.screen, WorkerLogScreen) and app.screen._ready, "the log")
        burst(app, "/Wdatabase")  # `W` toggles wrapping when it leaks
        box = app.screen.query_one("#log-filter", Input)
        await until(pilot, lambda: box.value.endswith("database"), "the burst to be typed")
        assert box.value == "Wdatabase"


# 2. the selection is one request, by id, always on screen; loaded pages stay loaded
def visible_rows(t: StableTable) -> range:
    """The row indexes the table shows now (its header takes one line)."""
    top = int(t.scroll_y)
    return range(top, top + t.scrollable_content_region.height - t.header_height)


async def test_2_the_cursor_stays_on_one_request_and_on_screen_through_20_refreshes():
    client = FakeClient(requests=[make_request(i + 100, "completed") for i in range(60)])
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 60)
        t = table(app)
        t.move_cursor(row=11)
        await pilot.pause()
        key = cursor_key(t)
        assert t.cursor_row in visible_rows(t)
        for n in range(20):
            client.requests.insert(0, make_request(n + 1, "pending"))
            await refreshed(pilot, app)
            await until(pilot, lambda: t.cursor_row in visible_rows(t),
                        f"the cursor on screen after refresh {n + 1} (row {t.cursor_row}, view {visible_rows(t)})")
            assert cursor_key(t) == key, f"refresh {n + 1} moved the selection"
        assert t.cursor_row == 31


async def test_2_enter_acts_on_the_highlighted_request_only():
    """The trial's worst case: Enter opened a row that was scrolled away. Now the selection
    is what is highlighted on screen, and Enter opens exactly that one."""
    client = FakeClient(requests=[make_request(i + 100, "completed") for i in range(60)])
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 60)
        t = table(app)
        t.move_cursor(row=11)
        await pilot.pause()
        key = cursor_key(t)
        client.requests[:0] = [make_request(n + 1, "pending") for n in range(25)]
        await refreshed(pilot, app)
        await until(pilot, lambda: t.cursor_row in visible_rows(t), "the view to follow the cursor")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "the request view")
        assert app.screen.request_id == key


async def test_2_loaded_pages_are_kept_across_refreshes():
    client = FakeClient(requests=[make_request(i + 1, "completed") for i in range(250)])
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, PAGE)
        t = table(app)
        await pilot.press("G")
        await until(pilot, lambda: t.row_count == 2 * PAGE, "the second page")
        t.move_cursor(row=PAGE + 50)  # on the second page, away from its end (which loads a third)
        await pilot.pause()
        key = cursor_key(t)
        for _ in range(3):
            await refreshed(pilot, app)
            assert t.row_count == 2 * PAGE, "a refresh threw the second page away"
            assert cursor_key(t) == key


async def test_2_the_selected_id_is_in_the_panel_footer():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, 8)
        panel = app.screen.query_one("#requests-panel")
        await pilot.press("j", "j")
        t = table(app)
        await until(pilot, lambda: cursor_key(t) in str(panel.border_subtitle), "the full id under the table")
        assert "3/8" in str(panel.border_subtitle)
