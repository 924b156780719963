"""The schedules screen of `eve ui`, driven with Pilot against a fake client with fixed schedules."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from textual.widgets import DataTable

from eve.tui.screens.modals import ConfirmModal
from eve.tui.screens.request import RequestScreen
from eve.tui.screens.schedules import SchedulesScreen
from tests.tui.conftest import make_app
from tests.tui.fakes import NOW, FakeClient, iso, make_request


def make_schedule(i: int, name: str, *, enabled: bool = True, last: dict[str, Any] | None = None,
                  cron: str = "0 3 * * *", tz: str = "Europe/Berlin") -> dict[str, Any]:
    return {"id": f"5c4ed000-0000-4000-8000-{i:012x}", "orgId": "o", "userId": "u", "name": name,
            "cronExpression": cron, "timezone": tz, "workerType": "code-review", "prompt": f"{name} prompt",
            "context": {}, "config": {}, "priority": 0, "enabled": enabled, "overlap": "skip", "maxDelayS": 600,
            "nextFireAt": iso(NOW + timedelta(hours=i)) if enabled else None,
            "nextFireTimes": [iso(NOW + timedelta(hours=i))] if enabled else [], "lastFiredAt": None,
            "lastFire": last, "createdAt": iso(NOW), "updatedAt": iso(NOW)}


class ScheduleClient(FakeClient):
    """FakeClient plus the three schedule calls the screen makes."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        done = self.requests[2]  # a completed request: the nightly's last run
        self.schedules = [
            make_schedule(1, "nightly", last={"fireAt": iso(NOW), "outcome": "fired", "requestId": done["id"],
                                              "requestStatus": "completed", "resultStatus": "success"}),
            make_schedule(2, "monday-report", enabled=False, cron="0 9 * * MON", tz="UTC"),
            make_schedule(3, "hourly-sync", cron="@hourly", tz="UTC",
                          last={"fireAt": iso(NOW), "outcome": "skipped", "requestId": None,
                                "requestStatus": None, "resultStatus": None}),
        ]

    async def list_schedules(self, **kw: Any) -> list[dict[str, Any]]:
        self._check("list_schedules", kw)
        return copy.deepcopy(self.schedules)

    async def update_schedule(self, schedule: str, **changes: Any) -> dict[str, Any]:
        self._check("update_schedule", {"schedule": schedule, **changes})
        s = next(x for x in self.schedules if x["id"] == schedule)
        s.update(changes)
        return copy.deepcopy(s)

    async def run_schedule(self, schedule: str) -> dict[str, Any]:
        self._check("run_schedule", schedule)
        new = make_request(55, "pending", "code-review", "nightly prompt", scheduleId=schedule)
        self.requests.insert(0, new)
        return copy.deepcopy(new)


def grid(app: Any) -> DataTable:
    return app.screen.query_one("#schedule-grid", DataTable)


def row_text(app: Any, i: int) -> list[str]:
    return [str(getattr(c, "plain", c)) for c in grid(app).get_row_at(i)]


async def test_s_opens_schedules_with_next_fire_last_result_and_paused():
    client = ScheduleClient()
    app = make_app(client)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, SchedulesScreen)
        assert grid(app).row_count == 3
        nightly, monday, hourly = (row_text(app, i) for i in range(3))
        assert nightly[:4] == ["nightly", "0 3 * * *", "Europe/Berlin", "code-review"]
        assert nightly[4] == "11-25 12:30 CET (in 1h00m)" and nightly[5] == "success" and nightly[6] == "no"
        assert monday[4] == "-" and monday[6] == "yes"
        assert hourly[5] == "skipped"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SchedulesScreen)


async def test_pause_resume_and_run_now_call_the_api():
    client = ScheduleClient()
    app = make_app(client)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause(0.2)
        await pilot.press("t")  # pause the nightly
        await pilot.pause(0.2)
        assert ("update_schedule", {"schedule": client.schedules[0]["id"], "enabled": False}) in client.calls
        assert row_text(app, 0)[6] == "yes"
        await pilot.press("down", "t")  # resume the monday report
        await pilot.pause(0.2)
        assert ("update_schedule", {"schedule": client.schedules[1]["id"], "enabled": True}) in client.calls
        await pilot.press("up", "r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await pilot.pause()
        assert client.count("run_schedule") == 0
        await pilot.press("r", "y")
        await pilot.pause(0.3)
        assert ("run_schedule", client.schedules[0]["id"]) in client.calls
        assert isinstance(app.screen, SchedulesScreen)


async def test_enter_opens_the_last_request_which_shows_its_schedule():
    client = ScheduleClient()
    client.requests[2]["scheduleId"] = client.schedules[0]["id"]
    app = make_app(client)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause(0.2)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RequestScreen) and app.screen.request_id == client.requests[2]["id"]
        meta = str(app.screen.query_one("#meta").render())
        assert "schedule" in meta and client.schedules[0]["id"] in meta


async def test_palette_opens_schedules_and_read_only_hides_writes():
    client = ScheduleClient()
    app = make_app(client, read_only=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        app.action_command_palette()
        await pilot.pause(0.2)
        await pilot.press(*"schedules")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, SchedulesScreen)
        await pilot.press("t", "r", "y")
        await pilot.pause(0.2)
        assert client.count("update_schedule") == 0 and client.count("run_schedule") == 0
        assert not isinstance(app.screen, ConfirmModal)


def test_schedules_screen_snapshot(snap_compare):
    assert snap_compare(make_app(ScheduleClient()), terminal_size=(120, 40), press=["s"])
