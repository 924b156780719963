"""What the console shows, as SVG snapshots (fixed terminal size, clock and data), every
screen at 120x40 and at 80x24.

Update after an intended change with `pytest tests/tui --snapshot-update`, then look at
the SVGs before committing.
"""

from __future__ import annotations

import pytest

from tests.tui.conftest import make_app
from tests.tui.fakes import FakeClient, default_requests, make_events

SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]


def live_app():
    return make_app(FakeClient(firehose_events=make_events(default_requests()[0]["id"])), live=True)


@pytest.mark.parametrize("size", SIZES)
def test_dashboard(snap_compare, size):
    assert snap_compare(live_app(), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_drill_down_running_request(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, press=["enter"])


@pytest.mark.parametrize("size", SIZES)
def test_drill_down_failed_request(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, press=["down", "enter"])


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
    assert snap_compare(make_app(), terminal_size=size, press=["down", "enter", "r"])


@pytest.mark.parametrize("size", SIZES)
def test_new_request_form(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, press=["n"])


@pytest.mark.parametrize("size", SIZES)
def test_edit_and_replay(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, press=["down", "enter", "e"])


@pytest.mark.parametrize("size", SIZES)
def test_search_results(snap_compare, size):
    assert snap_compare(make_app(), terminal_size=size, press=["slash", *"status:failed", "enter"])


@pytest.mark.parametrize("size", SIZES)
def test_api_down_header(snap_compare, size):
    assert snap_compare(make_app(FakeClient(down=True)), terminal_size=size)
