"""One test per defect of issue #36 (eve ui, third pass) that the console itself shows.

Pilot against the fake client, at the sizes of the operator trial. Each was seen failing
on the console before the fix that it names (the commit message says which).
"""

from __future__ import annotations

from textual import events
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, Static

from eve.tui.app import EveApp
from eve.tui.prefetch import PAGE
from eve.tui.screens.dashboard import DashboardScreen
from eve.tui.screens.modals import ConfirmModal, HelpScreen, NewRequestModal
from eve.tui.screens.questions import AnswerModal, QuestionsScreen
from eve.tui.screens.request import RequestScreen
from eve.tui.screens.workers import WorkerLogScreen, WorkersScreen
from eve.tui.widgets.table import StableTable
from tests.tui.conftest import make_app
from tests.tui.fakes import FakeClient, make_request
from tests.tui.test_pilot import cursor_key, refreshed, rows, started, table, text_of, until

KEY_NAMES = {"/": "slash", ":": "colon", " ": "space", "\r": "enter", "\x1b": "escape", "\x08": "backspace"}


def burst(app: EveApp, text: str) -> None:
    """Every key of `text` into the driver at once, as a paste or a lagging SSH link delivers
    them: Pilot's `press` waits for the app to go idle between two keys, which hides the bug."""
    driver = app._driver
    assert driver is not None
    for ch in text:
        key = KEY_NAMES.get(ch, ch)
        char = None if key == "backspace" else ch
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


def sixty_requests() -> FakeClient:
    return FakeClient(requests=[make_request(i + 100, "completed") for i in range(60)])


async def select_row(pilot: Pilot[None], app: EveApp, row: int) -> tuple[StableTable, str]:
    """Once the 60 rows are in: the cursor on `row`; the table and the selected request's id."""
    await started(pilot, app, 60)
    t = table(app)
    t.move_cursor(row=row)
    await pilot.pause()
    return t, cursor_key(t)


async def test_2_the_cursor_stays_on_one_request_and_on_screen_through_20_refreshes():
    client = sixty_requests()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        t, key = await select_row(pilot, app, 11)
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
    client = sixty_requests()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        t, key = await select_row(pilot, app, 11)
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


# 1. a bad filter is the search's error, shown under the search; nothing else stops
def header(app: EveApp) -> str:
    return app.header_text().plain


async def test_1_a_bad_org_is_an_inline_message_and_the_other_panels_keep_updating():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 8)
        dash = app.screen
        burst(app, "/org:nope\r")
        await until(pilot, lambda: any(c[0] == "list_requests" and c[1]["org"] == "nope" for c in client.calls),
                    "the search for org:nope")
        await refreshed(pilot, app)
        assert app.connection == "live" and "reconnecting" not in header(app) and "nope" not in header(app)
        assert rows(app) == 0, "the table kept showing rows the search did not answer"
        await until(pilot, lambda: "organization 'nope' not found" in inline_error(dash), "the inline message")
        assert dash.query_one("#filter", Input).display
        rows_now = await client.queue()
        rows_now[0]["pending"] = 77
        client.queue_rows = rows_now
        await refreshed(pilot, app)
        await until(pilot, lambda: "77" in text_of(dash.query_one("#queue", Static)), "the queue panel to update")
        assert app.connection == "live"
        burst(app, "/\x1b")  # esc clears the search and its message
        await until(pilot, lambda: rows(app) == 8 and not inline_error(dash), "the unfiltered table")


async def test_1_an_unknown_or_empty_type_is_an_inline_message_not_0_of_0():
    client = FakeClient()
    app = make_app(client)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, 8)
        dash = app.screen
        box = dash.query_one("#filter", Input)

        def typed_searches() -> list[object]:
            return [c for c in client.calls if c[0] == "list_requests" and c[1]["worker_type"] is not None]

        burst(app, "/type:nosuch\r")
        await until(pilot, lambda: typed_searches() or "nosuch" in inline_error(dash),
                    "type:nosuch to be searched or refused")
        assert not typed_searches(), "type:nosuch was sent as a search (0 of 0)"
        assert "code-review" in inline_error(dash)  # the types there are
        assert app.focused is box and box.value == "type:nosuch"  # ready to be corrected
        burst(app, "\x08" * 6 + "\r")  # type: (empty)
        await until(pilot, lambda: "type: needs a value" in inline_error(dash), "the message for an empty type:")
        assert not typed_searches(), "an empty type: was sent as a search"
        assert rows(app) == 8 and dash.filter_text == ""
        burst(app, "general\r")
        await until(pilot, lambda: dash.filter_text == "type:general" and rows(app) == 5, "the corrected search")
        assert not inline_error(dash)


def inline_error(screen: DashboardScreen) -> str:
    """The message under the search box, or "" when it shows none."""
    box = screen.query_one("#filter-error", Static)
    return str(box.content) if box.display else ""


# 6 and 13. j/k/g/G move the cursor in every table; help lists them and Tab
async def test_6_vim_keys_on_the_schedules_and_questions_screens():
    from tests.tui.test_questions_screen import QuestionClient
    from tests.tui.test_schedules_screen import ScheduleClient, make_schedule

    class Both(ScheduleClient, QuestionClient):
        pass

    client = Both()
    client.schedules += [make_schedule(i, f"job-{i}") for i in range(4, 9)]
    app = make_app(client, refresh_s=600)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        for key, grid, n in (("s", "#schedule-grid", 8), ("a", "#question-grid", 2)):
            await pilot.press(key)
            await until(pilot, lambda: app.screen.query_one(grid).row_count == n, f"the rows of {grid}")
            t = app.screen.query_one(grid)
            await pilot.press("j")
            assert t.cursor_row == 1, f"j on {grid}"
            await pilot.press("k")
            assert t.cursor_row == 0, f"k on {grid}"
            await pilot.press("G")
            assert t.cursor_row == n - 1, f"G on {grid}"
            await pilot.press("g")
            assert t.cursor_row == 0, f"g on {grid}"
            await pilot.press("escape")


async def test_13_help_lists_the_moving_keys_and_scrolls_at_60x20():
    app = make_app()
    async with app.run_test(size=(60, 20)) as pilot:
        await started(pilot, app, 8)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        text = str(app.screen.query_one("#help-text", Static).content)
        for keys in ("j k", "g G", "tab shift+tab"):
            assert keys in text, f"help does not list {keys}"
        scroll = app.screen.query_one("#help-scroll")
        assert scroll.max_scroll_y > 0, "the help fits: the test is not at a size where it must scroll"
        await pilot.press("j", "j", "j")
        await until(pilot, lambda: scroll.scroll_y == 3, "help to scroll with j")


# 7. answering a question asks first, like every other action
async def test_7_an_answer_is_sent_only_after_y():
    from tests.tui.test_questions_screen import QuestionClient

    client = QuestionClient()
    app = make_app(client, refresh_s=600)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, QuestionsScreen)
                    and app.screen.query_one("#question-grid").row_count == 2, "the questions")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AnswerModal), "the dialog")
        await pilot.press("1")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal) or client.count("answer_question"),
                    "a confirmation or an answer")
        assert client.count("answer_question") == 0, "one key answered a production question"
        assert "'yes'" in str(app.screen.query_one("#question").content)
        await pilot.press("n")  # no: back in the dialog, nothing sent
        await until(pilot, lambda: isinstance(app.screen, AnswerModal), "the dialog again")
        assert client.count("answer_question") == 0
        await pilot.press("2", "y")
        await until(pilot, lambda: isinstance(app.screen, QuestionsScreen), "the dialog to close")
        assert ("answer_question", {"id": client.questions[0]["id"], "answer": "no"}) in client.calls


# 13. nothing cut: ages over ten minutes, the drain dialog
def screen_lines(app: EveApp) -> list[str]:
    """The screen as text lines, from Textual's own screenshot."""
    import html
    import re

    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', app.export_screenshot()):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    return ["".join(t for _, t in sorted(parts)) for _, parts in sorted(rows.items())]


async def test_13_ages_over_ten_minutes_keep_their_seconds():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, 8)
        assert any("12m00s" in line for line in screen_lines(app)), "\n".join(screen_lines(app))


async def test_13_the_drain_dialog_shows_its_whole_question_at_80x24():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app, 8)
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, WorkersScreen) and app.screen._ready, "workers")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the drain dialog")
        await pilot.pause()
        frame = str.maketrans("│█▌▐", "    ")  # panel and dialog edges between the wrapped lines
        screen = " ".join(" ".join(line.translate(frame).split()) for line in screen_lines(app))
        assert "finishes what it runs, and exits." in screen, screen
