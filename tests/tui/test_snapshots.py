"""What the console shows, as SVG snapshots (fixed terminal size, clock and data).

Update after an intended change with `pytest tests/tui --snapshot-update`, then look at
the report before committing.
"""

from __future__ import annotations

from tests.tui.conftest import make_app
from tests.tui.fakes import FakeClient, default_requests, make_events


def live_app():
    return make_app(FakeClient(firehose_events=make_events(default_requests()[0]["id"])), live=True)


def test_dashboard(snap_compare):
    assert snap_compare(live_app(), terminal_size=(120, 40))


def test_dashboard_small_terminal(snap_compare):
    assert snap_compare(live_app(), terminal_size=(80, 24))


def test_drill_down_running_request(snap_compare):
    assert snap_compare(make_app(), terminal_size=(120, 40), press=["enter"])


def test_drill_down_failed_request(snap_compare):
    assert snap_compare(make_app(), terminal_size=(120, 40), press=["down", "enter"])


def test_workers_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=(120, 40), press=["w"])


def test_help_screen(snap_compare):
    assert snap_compare(make_app(), terminal_size=(120, 40), press=["question_mark"])


def test_confirm_modal(snap_compare):
    assert snap_compare(make_app(), terminal_size=(120, 40), press=["down", "enter", "r"])


def test_new_request_form(snap_compare):
    assert snap_compare(make_app(), terminal_size=(120, 40), press=["n"])


def test_api_down_header(snap_compare):
    assert snap_compare(make_app(FakeClient(down=True)), terminal_size=(120, 40))
