"""What the console shows, as SVG snapshots (fixed terminal size, clock and data), every
screen at 120x40 and at 80x24.

Update after an intended change with `pytest tests/tui --snapshot-update`, then look at
the SVGs before committing.
"""

from __future__ import annotations

import pytest

from tests.tui import conftest
from tests.tui.fakes import FakeClient, default_requests, make_events

def make_app(client=None, **kw):
    """One fetch per shot: a second refresh on a slow machine would add a point to the trends."""
    kw.setdefault("refresh_s", 600)
    return conftest.make_app(client, **kw)


SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]


def live_app():
    return make_app(FakeClient(firehose_events=make_events(default_requests()[0]["id"])), live=True)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard(snap_compare, size):
    assert snap_compare(live_app(), terminal_size=size)


def _open(*keys: str, then: tuple[str, ...] = ()):
    """Open a request and shoot once it and its timeline are loaded (they load in the background)."""
    async def run(pilot) -> None:
        from eve.tui.screens.request import RequestScreen

        await pilot.press(*keys)
        for _ in range(250):
            screen = pilot.app.screen
            if isinstance(screen, RequestScreen) and screen.request is not None and screen.last_event_id:
                break
            await pilot.pause(0.02)
        await pilot.press(*then)
        await pilot.pause()
    return run


@pytest.mark.parametrize("size", SIZES)
def test_drill_down_running_request(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=_open("enter"))


@pytest.mark.parametrize("size", SIZES)
def test_drill_down_failed_request(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=_open("down", "enter"))


@pytest.mark.parametrize("size", SIZES)
def test_workers_screen(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, press=["w"])


@pytest.mark.parametrize("size", SIZES)
def test_worker_log(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, press=["w", "enter"])


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, press=["question_mark"])


@pytest.mark.parametrize("size", SIZES)
def test_confirm_modal(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=_open("down", "enter", then=("r",)))


async def _form_loaded(pilot) -> None:
    """The form fills its worker types in the background: shoot once they are there."""
    from textual.widgets import Select, TextArea

    await pilot.press("n")
    for _ in range(250):
        selects = pilot.app.screen.query(Select)
        if selects and selects.first().value == "general":
            break
        await pilot.pause(0.02)
    pilot.app.screen.query_one(TextArea).cursor_blink = False  # a blinking cursor makes the shot random
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_new_request_form(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, run_before=_form_loaded)


@pytest.mark.parametrize("size", SIZES)
def test_search_results(snap_compare, size):
    async def run(pilot) -> None:
        await pilot.press("slash", *"status:failed", "enter")
        for _ in range(250):
            if pilot.app.fetch_count >= 2:
                break
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=size, run_before=run)


@pytest.mark.parametrize("size", SIZES)
def test_api_down_header(snap_compare, size):
    assert snap_compare(make_app(FakeClient(down=True)), terminal_size=size)
