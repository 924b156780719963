"""The worker grid, large; Enter tails the selected worker's own log."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, RichLog, Static

from eve.tui.screens.base import EveScreen
from eve.tui.widgets.format import state_text, ts
from eve.tui.widgets.header import StatusHeader

if TYPE_CHECKING:
    from eve.tui.app import Snapshot


class WorkersScreen(EveScreen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("enter", "logs", "Logs", show=False)]


    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Vertical(classes="panel", id="workers-big"):
            yield Static("Workers — Enter shows a worker's log", classes="panel-title")
            yield DataTable(id="worker-grid", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one("#worker-grid", DataTable)
        t.add_columns("worker", "type", "state", "current request", "slots", "heartbeat", "host", "pid", "version",
                      "started")
        self._ready = True
        self.update_snapshot(self.eve.snapshot)
        t.focus()

    def update_snapshot(self, snap: Snapshot) -> None:
        if not self._ready:
            return
        self.query_one(StatusHeader).refresh_text()
        t = self.query_one("#worker-grid", DataTable)
        row = t.cursor_row
        t.clear()
        for w in snap.workers:
            beat = Text(f"{w['heartbeatAgeS']:.0f}s ago", style="red" if w["heartbeatAgeS"] > 60 else "")
            started = ts(w.get("startedAt"))
            t.add_row(w["id"], w["workerType"], state_text(w["state"]), w.get("currentRequestId") or "-",
                      f"{w['slotsBusy']}/{w['slots']}", beat, w["hostname"], str(w["pid"]), w["version"],
                      f"{started:%Y-%m-%d %H:%M}" if started else "-", key=w["id"])
        if t.row_count and row is not None:
            t.move_cursor(row=min(row, t.row_count - 1))

    @on(DataTable.RowSelected, "#worker-grid")
    def _selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.push_screen(WorkerLogScreen(str(event.row_key.value)))

    def action_logs(self) -> None:
        t = self.query_one("#worker-grid", DataTable)
        if t.row_count:
            key = t.coordinate_to_cell_key((t.cursor_row, 0)).row_key.value
            self.app.push_screen(WorkerLogScreen(str(key)))


class WorkerLogScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Vertical(classes="panel"):
            yield Static(f"Log of {self.worker_id} (live)", classes="panel-title")
            yield RichLog(id="worker-log", wrap=True, markup=False, max_lines=5000)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(StatusHeader).refresh_text()
        self.tail()

    @work(exclusive=True)
    async def tail(self) -> None:
        app: Any = self.app
        log = self.query_one("#worker-log", RichLog)
        last = 0
        while True:
            try:
                for row in await app.client.worker_logs(self.worker_id, after=last):
                    at = ts(row["at"])
                    color = {"warning": "yellow", "error": "red"}.get(row["level"], "white")
                    log.write(Text.assemble((f"{at:%H:%M:%S} " if at else "", "bright_black"),
                                            (row["message"], color)))
                    last = row["id"]
            except Exception as exc:  # noqa: BLE001
                log.write(Text(f"(cannot fetch: {getattr(exc, 'message', exc)})", "yellow"))
            if not app.live:
                return
            await asyncio.sleep(app.refresh_s)
