"""Cron schedules: name, cron, zone, next fire, last result, paused; pause/resume and run now.

The list is fetched each time the app's refresh loop broadcasts a snapshot, only while
this screen is mounted, so the dashboard costs no extra API calls. `t` pauses or
resumes the selected schedule, `r` fires it now (after a y/n), Enter opens the
request of its latest fire. Writes are hidden with --read-only.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from eve.tui.screens.base import EveScreen
from eve.tui.widgets.format import status_text, ts
from eve.tui.widgets.header import StatusHeader
from eve.tui.widgets.table import StableTable

if TYPE_CHECKING:
    from eve.tui.app import Snapshot

COLUMNS = ("name", "cron", "tz", "type", "next fire", "last result", "paused")


def next_fire_text(s: dict[str, Any], now: datetime) -> Text:
    if not s["enabled"]:
        return Text("-", style="bright_black")
    at = ts(s.get("nextFireAt"))
    if at is None:
        return Text("never", style="yellow")
    try:
        local = at.astimezone(ZoneInfo(s["timezone"]))
    except (KeyError, ValueError, OSError):
        local = at
    secs = max(0, int((at - now).total_seconds()))
    rel = f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else f"{secs // 60}m{secs % 60:02d}s"
    return Text(f"{local:%m-%d %H:%M} {local.tzname()} (in {rel})")


def last_result_text(s: dict[str, Any]) -> Text:
    last = s.get("lastFire")
    if not last:
        return Text("-", style="bright_black")
    if last["outcome"] in ("skipped", "missed", "refused"):
        return Text(last["outcome"], style="yellow")
    return status_text(last.get("resultStatus") or last.get("requestStatus") or last["outcome"])


class SchedulesScreen(EveScreen):
    DEFAULT_CSS = "#schedules-big { height: 1fr; }"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("t", "toggle", "Pause/Resume"),
        Binding("r", "run_now", "Run now"),
        Binding("enter", "open_last", "Last request", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.schedules: list[dict[str, Any]] = []
        self.fetch_error: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Vertical(classes="panel", id="schedules-big"):
            yield Static("Schedules — t pause/resume · r run now · Enter last request", classes="panel-title",
                         id="schedules-title")
            yield StableTable(id="schedule-grid", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one("#schedule-grid", DataTable)
        t.add_columns(*COLUMNS)
        self._ready = True
        self.query_one(StatusHeader).refresh_text()
        self.load()
        t.focus()

    def update_snapshot(self, _snap: Snapshot) -> None:
        if self._ready:
            self.query_one(StatusHeader).refresh_text()
            self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("toggle", "run_now") and self.eve.read_only:
            return None
        return True

    @work(exclusive=True, group="schedules")
    async def load(self) -> None:
        try:
            self.schedules = await self.eve.client.list_schedules()
            self.fetch_error = None
        except Exception as exc:  # noqa: BLE001 - keep the last list, say why it is stale
            self.fetch_error = getattr(exc, "message", None) or str(exc)
        self._fill()

    def _fill(self) -> None:
        title = self.query_one("#schedules-title", Static)
        base = f"Schedules ({len(self.schedules)}) — t pause/resume · r run now · Enter last request"
        title.update(Text.assemble(base, (f"  (stale: {self.fetch_error[:60]})" if self.fetch_error else "", "red")))
        now = self.eve.clock()
        # by id, in place: the cursor stays on its schedule, and j/k/g/G move it (StableTable)
        self.query_one("#schedule-grid", StableTable).replace_rows([
            (s["id"], [s["name"], s["cronExpression"], s["timezone"], s["workerType"], next_fire_text(s, now),
                       last_result_text(s), Text("yes", style="yellow") if not s["enabled"] else Text("no")])
            for s in self.schedules])

    def current_schedule(self) -> dict[str, Any] | None:
        t = self.query_one("#schedule-grid", DataTable)
        if not t.row_count:
            return None
        key = t.coordinate_to_cell_key((t.cursor_row, 0)).row_key.value
        return next((s for s in self.schedules if s["id"] == key), None)

    # -- actions ---------------------------------------------------------------------------

    def action_toggle(self) -> None:
        s = self.current_schedule()
        if s is not None and not self.eve.read_only:
            self._toggle(s["id"], s["name"], not s["enabled"])

    @work(group="schedule-act")
    async def _toggle(self, schedule_id: str, name: str, enabled: bool) -> None:
        try:
            await self.eve.client.update_schedule(schedule_id, enabled=enabled)
        except Exception as exc:  # noqa: BLE001
            self.notify(f"{'resume' if enabled else 'pause'} failed: {getattr(exc, 'message', exc)}",
                        severity="error")
            return
        self.notify(f"{'resumed' if enabled else 'paused'} {name}")
        self.load()

    def action_run_now(self) -> None:
        from eve.tui.screens.modals import ConfirmModal

        s = self.current_schedule()
        if s is None or self.eve.read_only:
            return

        def go(ok: bool | None) -> None:
            if ok:
                self._run(s["id"], s["name"])

        self.app.push_screen(ConfirmModal(f"Run schedule {s['name']} now (a new {s['workerType']} request)?"), go)

    @work(group="schedule-act")
    async def _run(self, schedule_id: str, name: str) -> None:
        try:
            req = await self.eve.client.run_schedule(schedule_id)
        except Exception as exc:  # noqa: BLE001
            self.notify(f"run failed: {getattr(exc, 'message', exc)}", severity="error")
            return
        self.notify(f"{name}: created request {req['id'][:8]}")
        self.load()

    @on(DataTable.RowSelected, "#schedule-grid")
    def _selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open_last()

    def action_open_last(self) -> None:
        s = self.current_schedule()
        last = (s or {}).get("lastFire") or {}
        if last.get("requestId"):
            self.eve.open_request(last["requestId"])
        elif s is not None:
            self.notify(f"{s['name']} has not created a request yet")
