"""The default screen: queue depth with sparklines, worker grid, requests table, live tail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Input, RichLog, Sparkline, Static

from eve.tui.screens.base import EveScreen
from eve.tui.widgets.format import age, event_text, first_line, money, ms, state_text, status_text
from eve.tui.widgets.header import StatusHeader

if TYPE_CHECKING:
    from eve.tui.app import Snapshot


def matches(req: dict[str, Any], query: str) -> bool:
    """`/` filter: words are ANDed; `status:x` and `type:x` match fields, other words any text."""
    for word in query.lower().split():
        if word.startswith("status:"):
            if req["status"] != word[7:]:
                return False
        elif word.startswith("type:"):
            if req["workerType"] != word[5:]:
                return False
        elif word not in " ".join(str(req.get(k) or "") for k in ("id", "status", "workerType", "prompt")).lower():
            return False
    return True


class DashboardScreen(EveScreen):
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("n", "new_request", "New"),
        Binding("f", "follow", "Follow tail"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.following = True
        self.loading_more = False
        self._early_events: list[dict[str, Any]] = []


    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Horizontal(id="top"):
            with Vertical(id="queue-panel", classes="panel"):
                yield Static("Queue", classes="panel-title")
                yield DataTable(id="queue", cursor_type="none", zebra_stripes=False)
                yield Vertical(id="sparklines")
            with Vertical(id="workers-panel", classes="panel"):
                yield Static("Workers", classes="panel-title")
                yield DataTable(id="workers", cursor_type="none")
        with Horizontal(id="bottom"):
            with Vertical(id="requests-panel", classes="panel"):
                yield Static("Requests", classes="panel-title", id="requests-title")
                yield Input(placeholder="filter: text, status:failed, type:code-review  (enter to apply, esc clears)",
                            id="filter")
                yield DataTable(id="requests", cursor_type="row")
            with Vertical(id="tail-panel", classes="panel"):
                yield Static("Live tail", classes="panel-title", id="tail-title")
                yield RichLog(id="tail", wrap=False, markup=False, max_lines=2000, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        q = self.query_one("#queue", DataTable)
        q.add_columns("type", "pending", "oldest", "running", "done/1h", "failed/1h")
        w = self.query_one("#workers", DataTable)
        w.add_columns("worker", "type", "state", "request", "slots", "beat")
        r = self.query_one("#requests", DataTable)
        r.add_columns("id", "status", "type", "age", "duration", "cost", "prompt")
        self.query_one("#filter", Input).display = False
        q.can_focus = False
        w.can_focus = False
        self._ready = True
        self.update_snapshot(self.eve.snapshot)
        for event in self._early_events:
            self.add_tail_event(event)
        self._early_events.clear()
        r.focus()

    def on_resize(self) -> None:
        self.set_class(self.size.width < 100 or self.size.height < 30, "-narrow")

    # -- rendering -------------------------------------------------------------------------------

    def update_snapshot(self, snap: Snapshot) -> None:
        if not self._ready:
            return
        self.query_one(StatusHeader).refresh_text()
        now = self.eve.clock()
        q = self.query_one("#queue", DataTable)
        q.clear()
        for row in snap.queue:
            oldest = row.get("oldestPendingAgeS")
            q.add_row(row["workerType"], str(row["pending"]), ms(int(oldest * 1000)) if oldest is not None else "-",
                      str(row["running"]), str(row["completedLastHour"]), str(row["failedLastHour"]))
        self._sparklines(snap)
        w = self.query_one("#workers", DataTable)
        w.clear()
        lease = 60.0
        for wk in snap.workers:
            beat = f"{wk['heartbeatAgeS']:.0f}s"
            w.add_row(wk["id"], wk["workerType"], state_text(wk["state"]), (wk.get("currentRequestId") or "-")[:8],
                      f"{wk['slotsBusy']}/{wk['slots']}", f"[red]{beat}[/]" if wk["heartbeatAgeS"] > lease else beat)
        self._fill_requests(snap.requests, now)

    def _sparklines(self, snap: Snapshot) -> None:
        box = self.query_one("#sparklines", Vertical)
        for wt, data in snap.history.items():
            sid = f"spark-{wt}"
            existing = box.query(f"#{sid}")
            if existing:
                existing.first(Sparkline).data = data[-60:] or [0.0]
            else:
                box.mount(Horizontal(Static(f"{wt:<12}", classes="spark-label"),
                                     Sparkline(data[-60:] or [0.0], id=sid, classes="spark"), classes="spark-row"))

    def _fill_requests(self, requests: list[dict[str, Any]], now: Any) -> None:
        table = self.query_one("#requests", DataTable)
        selected = None
        if table.row_count and table.cursor_row is not None:
            try:
                selected = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            except Exception:  # noqa: BLE001 - no selection yet
                selected = None
        table.clear()
        shown = [r for r in requests if matches(r, self.filter_text)]
        for r in shown:
            cost = (r.get("result") or {}).get("costUsd")
            table.add_row(r["id"][:8], status_text(r["status"]), r["workerType"], age(r["createdAt"], now),
                          ms(r.get("durationMs")), money(cost), first_line(r["prompt"], 60), key=r["id"])
        if selected is not None:
            try:
                table.move_cursor(row=table.get_row_index(selected))
            except Exception:  # noqa: BLE001 - the row left the view
                pass
        title = f"Requests ({len(shown)}" + (f" of {len(requests)}, filter: {self.filter_text}" if self.filter_text
                                             else "") + ")"
        self.query_one("#requests-title", Static).update(title)

    def add_tail_event(self, event: dict[str, Any]) -> None:
        if not self._ready:
            self._early_events.append(event)
            return
        log = self.query_one("#tail", RichLog)
        log.auto_scroll = self.following
        log.write(event_text(event, with_request=True))

    # -- interaction -------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self.query_one("#filter", Input).display = bool(self.filter_text)
        self._fill_requests(self.eve.snapshot.requests, self.eve.clock())

    @on(Input.Submitted, "#filter")
    def _apply_filter(self, event: Input.Submitted) -> None:
        self.set_filter(event.value)
        self.query_one("#requests", DataTable).focus()

    def action_clear_filter(self) -> None:
        self.set_filter("")
        self.query_one("#requests", DataTable).focus()

    def action_open(self) -> None:
        table = self.query_one("#requests", DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            if key:
                self.eve.open_request(str(key))

    @on(DataTable.RowSelected, "#requests")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.eve.open_request(str(event.row_key.value))

    @on(DataTable.RowHighlighted, "#requests")
    def _maybe_load_more(self, event: DataTable.RowHighlighted) -> None:
        table = self.query_one("#requests", DataTable)
        if event.cursor_row >= table.row_count - 5 and not self.loading_more and not self.filter_text:
            self._load_more()

    @work(exclusive=True, group="more")
    async def _load_more(self) -> None:
        self.loading_more = True
        try:
            if await self.eve.load_more():
                self._fill_requests(self.eve.snapshot.requests, self.eve.clock())
        except Exception as exc:  # noqa: BLE001 - shown, not fatal
            self.notify(f"could not load more: {exc}", severity="warning")
        finally:
            self.loading_more = False

    def action_follow(self) -> None:
        log = self.query_one("#tail", RichLog)
        self.following = not self.following
        log.auto_scroll = self.following
        if self.following:
            log.scroll_end(animate=False)
        self.query_one("#tail-title", Static).update("Live tail" + ("" if self.following else " (paused: f follows)"))

    def on_mouse_scroll_up(self) -> None:
        if self.following and self.query_one("#tail", RichLog).has_focus:
            self.action_follow()

    def action_new_request(self) -> None:
        if self.eve.read_only:
            self.notify("read-only: new requests are disabled", severity="warning")
            return
        from eve.tui.screens.modals import NewRequestModal

        def done(created: dict[str, Any] | None) -> None:
            if created:
                self.eve.open_request(created["id"])

        self.app.push_screen(NewRequestModal(), done)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "new_request" and self.eve.read_only:
            return None  # hidden from the footer and disabled
        return True
