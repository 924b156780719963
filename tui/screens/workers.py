"""The worker grid, large: Enter tails a worker's log, `o` opens what it runs, `d` drains it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Input, RichLog, Static

from eve.tui.screens.base import EveScreen
from eve.tui.widgets.format import clock, sandbox_text, ts, worker_state
from eve.tui.widgets.header import StatusHeader
from eve.tui.widgets.table import StableTable

if TYPE_CHECKING:
    from eve.tui.app import Snapshot


class WorkersScreen(EveScreen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("enter", "logs", "Logs"),
                Binding("o", "open_request", "Open request"), Binding("d", "drain", "Drain")]

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Vertical(classes="panel", id="workers-big"):
            yield Static("Workers", classes="panel-title", id="workers-big-title")
            yield StableTable(id="worker-grid", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        self._build_columns()
        self.update_snapshot(self.eve.snapshot)
        self.query_one("#worker-grid", DataTable).focus()

    def _wide(self) -> bool:
        return self.app.size.width >= 100

    def _build_columns(self) -> None:
        t = self.query_one("#worker-grid", StableTable)
        t.clear(columns=True)
        t.add_columns("worker", "type", "state", "request", "slots", "beat", "sandbox")
        if self._wide():
            t.add_columns("host", "pid", "version", "started")
        self._built_wide = self._wide()

    def on_resize(self) -> None:
        if self._ready and self._built_wide != self._wide():
            self._build_columns()
            self.update_snapshot(self.eve.snapshot)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "drain" and self.eve.read_only:
            return None
        return True

    def update_snapshot(self, snap: Snapshot) -> None:
        if not self._ready:
            return
        self.query_one(StatusHeader).refresh_text()
        rows = []
        for w in snap.workers:
            beat = Text(f"{w['heartbeatAgeS']:.0f}s", style="red" if w["state"] == "lost" else "")
            cells: list[Any] = [w["id"], w["workerType"], worker_state(w),
                                (w.get("currentRequestId") or "-")[:8], f"{w['slotsBusy']}/{w['slots']}", beat,
                                sandbox_text(w)]
            if self._built_wide:
                started = ts(w.get("startedAt"))
                cells += [w["hostname"], str(w["pid"]), w["version"],
                          clock(started, self.eve.utc, "%m-%d %H:%M") if started else "-"]
            rows.append((w["id"], cells))
        self.query_one("#worker-grid", StableTable).replace_rows(rows)
        self.query_one("#workers-big-title", Static).update(
            Text.assemble(("Workers", "bold"), (f" {len(rows)} — Enter log · o open request · d drain",
                                                "bright_black")))

    def _selected(self) -> dict[str, Any] | None:
        key = self.query_one("#worker-grid", StableTable).selected_key()
        return next((w for w in self.eve.snapshot.workers if w["id"] == key), None)

    @on(DataTable.RowSelected, "#worker-grid")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.push_screen(WorkerLogScreen(str(event.row_key.value)))

    def action_logs(self) -> None:
        w = self._selected()
        if w:
            self.app.push_screen(WorkerLogScreen(w["id"]))

    def action_open_request(self) -> None:
        w = self._selected()
        if w and w.get("currentRequestId"):
            self.eve.open_request(w["currentRequestId"])
        elif w:
            self.notify(f"{w['id']} runs nothing now")

    def action_drain(self) -> None:
        from eve.tui.screens.modals import ConfirmModal

        w = self._selected()
        if w is None or self.eve.read_only:
            return

        def go(ok: bool | None) -> None:
            if ok:
                self._drain(w["id"])

        self.app.push_screen(ConfirmModal(f"Drain {w['id']}? It stops claiming, finishes what it runs, and exits."),
                             go)

    @work(group="drain")
    async def _drain(self, worker_id: str) -> None:
        try:
            await self.eve.client.drain_worker(worker_id)
        except Exception as exc:  # noqa: BLE001
            self.notify(f"drain failed: {getattr(exc, 'message', exc)}", severity="error")
            return
        self.notify(f"drain requested: {worker_id} stops claiming within a heartbeat")
        self.eve.refresh_data()


class WorkerLogScreen(EveScreen):
    """A worker's own log, live; lines that concern a request name it. `/` filters, `W` wraps."""

    BINDINGS = [Binding("escape", "back", "Back"), Binding("slash", "filter", "Filter", key_display="/"),
                Binding("W", "wrap", "Wrap")]

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id
        self.rows: list[dict[str, Any]] = []
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Vertical(classes="panel"):
            yield Static(f"Log of {self.worker_id} (live)", classes="panel-title", id="log-title")
            yield Input(placeholder="filter lines (enter; esc clears)", id="log-filter")
            yield RichLog(id="worker-log", wrap=True, markup=False, max_lines=5000)
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        self.query_one("#log-filter", Input).display = False
        # the log, not the hidden filter box (the first focusable widget), has the keys: else
        # `/` and what follows were typed into the box before it showed
        self.query_one("#worker-log", RichLog).focus()
        self.query_one(StatusHeader).refresh_text()
        self.tail()

    def update_snapshot(self, _snapshot: Any) -> None:
        if self._ready:
            self.query_one(StatusHeader).refresh_text()

    def _line(self, row: dict[str, Any]) -> Text:
        color = {"warning": "yellow", "error": "red"}.get(row["level"], "white")
        rid = (row.get("data") or {}).get("request_id") or row.get("requestId")
        line = Text(clock(ts(row["at"]), self.eve.utc) + " ", "bright_black")
        if rid:
            line.append(f"{str(rid)[:8]} ", "cyan")
        line.append(row["message"], color)
        return line

    def _write(self, row: dict[str, Any]) -> None:
        line = self._line(row)
        if not self.filter_text or self.filter_text.lower() in line.plain.lower():
            self.query_one("#worker-log", RichLog).write(line)

    @work(exclusive=True)
    async def tail(self) -> None:
        last = 0
        while True:
            try:
                for row in await self.eve.client.worker_logs(self.worker_id, after=last):
                    self.rows.append(row)
                    del self.rows[:-5000]
                    self._write(row)
                    last = row["id"]
            except Exception as exc:  # noqa: BLE001
                self.query_one("#worker-log", RichLog).write(
                    Text(f"(cannot fetch: {getattr(exc, 'message', exc)})", "yellow"))
            if not self.eve.live:
                return
            await asyncio.sleep(self.eve.refresh_s)

    def _rewrite(self) -> None:
        log = self.query_one("#worker-log", RichLog)
        log.clear()
        for row in self.rows:
            self._write(row)
        self.query_one("#log-title", Static).update(
            f"Log of {self.worker_id} (live)" + (f" — filter: {self.filter_text}" if self.filter_text else ""))

    def action_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    @on(Input.Submitted, "#log-filter")
    def _apply(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip()
        self.query_one("#log-filter", Input).display = bool(self.filter_text)
        self._rewrite()
        self.query_one("#worker-log", RichLog).focus()

    def action_wrap(self) -> None:
        log = self.query_one("#worker-log", RichLog)
        log.wrap = not log.wrap
        self._rewrite()

    def action_back(self) -> None:
        if self.filter_text or self.query_one("#log-filter", Input).display:
            self.filter_text = ""
            self.query_one("#log-filter", Input).display = False
            self._rewrite()
            return
        self.app.pop_screen()
