"""One test per defect of issue #18 that the console itself can show (Pilot, fake client).

Each failed on the console before its second pass; the API-side ones (workers from claims,
cancelled apart from failed, pending work without a live worker, worker log timestamps,
search) are in tests/integration/api/test_console_api.py.
"""

from __future__ import annotations

from textual.widgets import DataTable, Input, RichLog, Static

from eve.tui.screens.dashboard import DashboardScreen
from eve.tui.screens.modals import ConfirmModal, NewRequestModal
from eve.tui.screens.request import RequestScreen
from eve.tui.screens.workers import WorkerLogScreen, WorkersScreen
from eve.tui.widgets.format import spark
from tests.tui.conftest import make_app
from tests.tui.fakes import NOW, FakeClient, iso, make_events, make_request
from tests.tui.test_pilot import cursor_key, refreshed, rows, started, table, text_of, until


# 1. the table keeps its place; Home/g/G/j/k move the cursor
async def test_1_refresh_does_not_jump_and_new_rows_show_at_the_top():
    client = FakeClient(requests=[make_request(i + 10, "completed") for i in range(100)])
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 100)
        t = table(app)
        t.move_cursor(row=40)
        await until(pilot, lambda: t.scroll_y > 0, "the table to scroll")
        await pilot.pause()
        key, y0 = cursor_key(t), t.scroll_y
        seen: list[float] = []
        t.watch(t, "scroll_y", lambda v: seen.append(v), init=False)
        client.requests[:0] = [make_request(i + 1, "pending") for i in range(3)]
        await refreshed(pilot, app)
        await pilot.pause()
        assert cursor_key(t) == key
        assert seen and min(seen) > 0, f"the table jumped to the top: {seen}"
        assert t.scroll_y == y0 + 3  # the same rows stay in view
        await pilot.press("g")
        await until(pilot, lambda: t.cursor_row == 0 and t.scroll_y == 0, "the top")
        client.requests[:0] = [make_request(200, "pending")]
        await refreshed(pilot, app)
        assert t.scroll_y == 0 and cursor_key(t) != client.requests[0]["id"]  # at the top, new rows come into view
        assert str(t.coordinate_to_cell_key((0, 0)).row_key.value) == client.requests[0]["id"]


async def test_1_vim_keys_and_home_end():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 8)
        t = table(app)
        await pilot.press("j", "j")
        assert t.cursor_row == 2
        await pilot.press("k")
        assert t.cursor_row == 1
        await pilot.press("G")
        assert t.cursor_row == 7
        await pilot.press("home")
        assert t.cursor_row == 0
        await pilot.press("end")
        assert t.cursor_row == 7


# 2. a cancel reloads the request without doubling the timeline
async def test_2_cancel_does_not_duplicate_the_timeline():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen)
                    and len(app.screen.query_one("#timeline", RichLog).lines) == 8, "the timeline")
        screen = app.screen
        await pilot.press("c", "y")
        await until(pilot, lambda: client.count("get_request") >= 3, "the reload after cancel")
        await until(pilot, lambda: client.count("list_events") >= 2, "the events reload")
        await pilot.pause()
        assert len(screen.query_one("#timeline", RichLog).lines) == 8


# 3. the 8-character ids the console shows open their request
async def test_3_short_id_opens_the_request():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        full = client.requests[2]["id"]
        app.open_request(full[:8])
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "the request screen")
        assert app.screen.request_id == full
        await until(pilot, lambda: app.screen.request is not None, "the request loaded")


# 5. nothing important is cut at 120x40 or at 80x24
async def test_5_columns_keep_their_width_and_prompts_are_readable():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        t = table(app)
        widths = [c.width for c in t.columns.values()]
        await refreshed(pilot, app)
        assert [c.width for c in t.columns.values()] == widths
        assert max(c.width for c in t.columns.values()) >= 25  # the prompt
        queue = text_of(app.screen.query_one("#queue", Static))
        assert "fail" in queue and "failed/" not in queue


async def test_5_small_terminal_shows_what_workers_run_and_the_form_fits():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        screen = app.screen
        assert client.requests[0]["id"][:8] in text_of(screen.query_one("#workers", Static))
        for _ in range(6):  # Tab never lands on the hidden tail
            await pilot.press("tab")
            assert not screen.query_one("#tail", RichLog).has_focus
        await pilot.press("escape")
        t = table(app)
        t.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "the request")
        title = app.screen.query_one("#request-title", Static)
        await pilot.pause()
        assert title.region.width >= len(f"Request {client.requests[0]['id']}")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "the dashboard")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NewRequestModal), "the form")
        await pilot.pause()
        full = app.screen.region
        for button in app.screen.query("Button"):
            assert full.contains_region(button.region), f"{button.id} is clipped: {button.region}"
        box = app.screen.query_one("#new-box")
        assert full.contains_region(box.region)


# 6. the detail updates while the request runs; values wrap in their column
async def test_6_detail_fields_update_while_running():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("enter")  # the processing request
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.request is not None,
                    "the request")
        screen = app.screen
        assert "processing" in text_of(screen.query_one("#meta", Static))
        done = make_request(1, "completed")
        client.requests[0] = done
        await refreshed(pilot, app)
        await until(pilot, lambda: "completed" in text_of(screen.query_one("#meta", Static)), "the new status")


async def test_6_long_timeline_lines_wrap():
    client = FakeClient()
    long_text = "word " * 60 + "THE-END"
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.last_event_id, "events")
        app.screen._add_event({"id": 999, "at": iso(NOW), "kind": "text", "data": {"text": long_text}})
        await pilot.pause()
        lines = [s.text for s in app.screen.query_one("#timeline", RichLog).lines]
        assert "THE-END" in "".join(lines)


# 7. the table is a search over all history and says how many match
async def test_7_title_counts_the_whole_history_and_search_goes_to_the_api():
    client = FakeClient(requests=[make_request(i + 1, "failed" if i % 10 == 0 else "completed",
                                               prompt=f"job {i}") for i in range(230)])
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 100)
        title = app.screen.query_one("#requests-title", Static)
        assert "100 of 230" in text_of(title)
        await pilot.press("slash", *"status:failed", "enter")
        await until(pilot, lambda: "23 of 23" in text_of(title), "the search's count")
        assert rows(app) == 23  # rows that were never loaded are found


# 8. a hung API does not look live
async def test_8_hung_api_is_noticed():
    client = FakeClient()
    app = make_app(client, fetch_timeout=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        assert app.connection == "live"
        client.hung = True
        app.refresh_data()
        await until(pilot, lambda: app.connection != "live", "the hung API to be noticed", timeout=3)
        assert "did not answer" in (app.last_error or "")


# 9. pause freezes the tail too
async def test_9_pause_freezes_the_live_tail():
    client = FakeClient()
    app = make_app(client, live=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        log = app.screen.query_one("#tail", RichLog)
        events = make_events(client.requests[0]["id"])
        client.live_events.put_nowait(events[0])
        await until(pilot, lambda: len(log.lines) == 1, "the first event")
        await pilot.press("p")
        client.live_events.put_nowait(events[1])
        await until(pilot, lambda: client.live_events.empty(), "the event to be read")
        await pilot.pause()
        assert len(log.lines) == 1
        await pilot.press("p")
        await until(pilot, lambda: len(log.lines) == 2, "the held event after resume")


# 10. the palette lists the console's commands, replays the last failed, filters cancelled
async def test_10_palette_lists_commands_and_replays_the_last_failed():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("colon")

        def options() -> list[str]:
            lists = app.screen.query("OptionList")
            if not lists:
                return []
            ol = lists.first()
            return [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]

        await until(pilot, lambda: any("filter status:cancelled" in o for o in options()), "our commands")
        await pilot.press(*"replay last failed")
        await until(pilot, lambda: options() and "replay last failed" in options()[0], "the replay command")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "a confirmation")
        await pilot.press("y")
        newest_failed = next(r for r in client.requests if r["status"] == "failed")
        await until(pilot, lambda: ("replay", newest_failed["id"]) in client.calls, "the replay")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "the new request")


# 11. worker log lines name their request and keep their own time
async def test_11_worker_log_names_the_request():
    client = FakeClient()
    rid = client.requests[0]["id"]
    client.log_rows = [{"id": 1, "at": "2026-11-25T10:29:13Z", "level": "info", "message": "request claimed",
                        "data": {"request_id": rid}}]
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        app.push_screen(WorkerLogScreen("worker-vps1-4241"))
        await until(pilot, lambda: isinstance(app.screen, WorkerLogScreen)
                    and len(app.screen.query_one("#worker-log", RichLog).lines) == 1, "the log line")
        line = app.screen.query_one("#worker-log", RichLog).lines[0].text
        assert "10:29:13" in line and rid[:8] in line


# 13. pending work and no live worker is an alert
async def test_13_pending_work_without_a_live_worker_is_an_alert():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        alerts = app.screen.query_one("#alerts", Static)
        assert alerts.display and "data: 4 pending and no live worker" in text_of(alerts)


# 14. Ctrl+C quits (asking when requests are marked); sparklines share one scale
async def test_14_ctrl_c_quits():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("ctrl+c")
        await until(pilot, lambda: not app.is_running, "the app to exit")


async def test_14_ctrl_c_asks_when_requests_are_marked():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("space", "space")
        assert len(app.screen.marked) == 2
        await pilot.press("ctrl+c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the confirmation")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "back")
        assert app.is_running
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the bulk confirmation")
        await pilot.press("y")
        await until(pilot, lambda: client.count("cancel") == 2, "two cancels behind one confirm")


def test_14_sparklines_share_a_scale():
    assert spark([1, 1], top=8, width=2) != spark([8, 8], top=8, width=2)
    assert spark([8], top=8, width=3) == "  █" and spark([0], top=8, width=1) == "▁"


async def test_workers_screen_opens_the_current_request_and_drains():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, WorkersScreen), "the workers")
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, RequestScreen), "the worker's request")
        assert app.screen.request_id == client.requests[0]["id"]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, WorkersScreen), "the workers again")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the drain confirmation")
        await pilot.press("y")
        await until(pilot, lambda: client.drained == ["worker-vps1-4241"], "the drain call")


async def test_time_toggle_switches_the_header_zone():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        assert "UTC" in str(app.header_text())
        await pilot.press("t")
        assert "local" in str(app.header_text()) and not app.utc


async def test_column_sort_reorders_loaded_rows():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 8)
        await pilot.press("greater_than_sign")  # age -> status
        await pilot.pause()
        t = table(app)
        statuses = [str(t.get_cell_at((i, 2))) for i in range(t.row_count)]
        assert statuses == sorted(statuses, reverse=False) or statuses == sorted(statuses, reverse=True)
        assert statuses != [r["status"] for r in client.requests]


async def test_a_cell_that_grows_widens_its_column():
    """Found by the tmux walk: a worker going from `busy` to `stopped` showed `stopp`."""
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, WorkersScreen), "the workers")
        rows = await client.workers()
        for w in rows:
            w["state"] = "draining"
        client.worker_rows = rows
        await refreshed(pilot, app)
        grid = app.screen.query_one("#worker-grid", DataTable)
        state = next(c for c in grid.columns.values() if str(c.label) == "state")
        assert state.content_width >= len("draining")
