"""The default screen: stats strip, alerts, queue with trends, workers, requests (a server-side
search over the whole history) and the live tail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Input, RichLog, Static

from eve.tui.screens.base import EveScreen
from eve.tui.widgets.format import age, event_text, first_line, money, ms, spark, state_text, status_text, worker_state
from eve.tui.widgets.header import StatusHeader
from eve.tui.widgets.table import StableTable

if TYPE_CHECKING:
    from eve.tui.app import Snapshot

# (key, header, width) of the requests table; the prompt takes what is left
COLUMNS = [("mark", " ", 1), ("id", "id", 8), ("status", "status", 10), ("type", "type", 11), ("org", "org", 10),
           ("age", "age", 6), ("duration", "took", 6), ("cost", "cost", 7)]
NARROW_DROP = {"cost", "org"}
SORTS = ["age", "status", "type", "duration", "cost"]
TREND = 20


def org_usage_table(orgs: list[dict[str, Any]]) -> Table | None:
    """Per org: pending, running, this month's spend against its budget (operators see every org)."""
    if len(orgs) < 2 and not any(o.get("monthlyBudgetUsd") for o in orgs):
        return None
    t = Table(box=None, padding=(0, 1, 0, 0), expand=True, show_edge=False, header_style="bold")
    t.add_column("org", no_wrap=True, overflow="ellipsis", ratio=1)
    for name in ("pend", "run", "spend/mo"):
        t.add_column(name, justify="right", no_wrap=True)
    for o in orgs:
        budget, spend = o.get("monthlyBudgetUsd"), float(o.get("monthSpendUsd") or 0)
        over = budget is not None and spend >= budget
        t.add_row(o["slug"], str(o["pending"]), str(o["running"]),
                  Text(f"${spend:,.2f}" + (f"/{budget:,.0f}" if budget is not None else ""), "bold red" if over else ""))
    return t


def sort_key(column: str) -> Any:
    def key(r: dict[str, Any]) -> Any:
        if column == "cost":
            return (r.get("result") or {}).get("costUsd") or 0.0
        if column == "duration":
            return r.get("durationMs") or 0
        if column == "type":
            return r["workerType"]
        if column == "status":
            return r["status"]
        return r["createdAt"]
    return key


class DashboardScreen(EveScreen):
    _refused_filter: str | None = None  # a filter refused before it was sent (kept across refreshes)
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("slash", "filter", "Search", key_display="/"),
        Binding("n", "new_request", "New"),
        Binding("f", "follow", "Follow tail", show=False),
        Binding("space", "mark", "Mark", show=False),
        Binding("C", "bulk_cancel", "Cancel marked", show=False),
        Binding("R", "bulk_replay", "Replay marked", show=False),
        Binding("less_than_sign", "sort(-1)", "Sort ←", key_display="<", show=False),
        Binding("greater_than_sign", "sort(1)", "Sort →", key_display=">", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.following = True
        self.loading_more = False
        self.marked: set[str] = set()
        self.sort_column = "age"
        self.sort_reverse = True
        self.show_org = False
        self._columns_for: tuple[int, bool, bool] | None = None
        self._shown: dict[str, Any] = {}  # what each Static shows: unchanged data is not re-rendered
        self._early_events: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield Static("", id="stats")
        yield Static("", id="alerts")
        with Horizontal(id="top"):
            with Vertical(id="queue-panel", classes="panel"):
                yield Static("Queue", classes="panel-title", id="queue-title")
                yield Static("", id="queue")
            with Vertical(id="workers-panel", classes="panel"):
                yield Static("Workers", classes="panel-title", id="workers-title")
                yield Static("", id="workers")
        with Vertical(id="bottom"):
            with Vertical(id="requests-panel", classes="panel"):
                yield Static("Requests", classes="panel-title", id="requests-title")
                yield Input(placeholder="search: words status:failed,cancelled type:x org:x since:1h  (enter, esc clears)",
                            id="filter")
                yield Static("", id="filter-error")
                yield StableTable(id="requests", cursor_type="row")
            with Vertical(id="tail-panel", classes="panel"):
                yield Static("Live tail", classes="panel-title", id="tail-title")
                yield RichLog(id="tail", wrap=True, markup=False, max_lines=2000, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#filter-error", Static).display = False
        self.query_one("#alerts", Static).display = False
        self._narrow()
        self._ready = True
        self.update_snapshot(self.eve.snapshot)
        for event in self._early_events:
            self.add_tail_event(event)
        self._early_events.clear()
        self.query_one("#requests", DataTable).focus()

    def _narrow(self) -> None:
        narrow = self.app.size.width < 100 or self.app.size.height < 30
        self.set_class(narrow, "-narrow")
        self.query_one("#tail", RichLog).can_focus = not narrow  # hidden: Tab must not land there

    def on_resize(self) -> None:
        self._narrow()
        if self._ready:  # the workers panel shows as many rows as fit: once laid out, fill it again
            self.call_after_refresh(self._workers, self.eve.snapshot)

    @on(StableTable.Resized, "#requests")
    def _table_resized(self) -> None:
        if self._ready:
            self._fill_requests()

    # -- rendering -------------------------------------------------------------------------------

    def update_snapshot(self, snap: Snapshot) -> None:
        if not self._ready:
            return
        self.query_one(StatusHeader).refresh_text()
        self._stats(snap)
        self._alerts(snap)
        self._queue(snap)
        self._workers(snap)
        self._fill_requests()

    def _stats(self, snap: Snapshot) -> None:
        s = (snap.stats or {}).get("totals")
        if not s:
            self._update("#stats", Text("last 1h: no stats from this API", "bright_black"), "no stats")
            return
        line = (Text.assemble(
            ("last 1h: ", "bold"), (f"{s['completed']} done · ", "green"), (f"{s['failed']} failed · ", "red"),
            (f"{s['cancelled']} cancelled · ", "bright_black"),
            f"p50 {ms(s.get('p50Ms'))} · p95 {ms(s.get('p95Ms'))} · {money(s.get('costUsd'))} · "
            f"{s.get('tokens') or 0:,} tokens · {s.get('jobsPerMin') or 0:.1f} jobs/min"))
        self._update("#stats", line, line.plain)

    def _alerts(self, snap: Snapshot) -> None:
        alerts = [f"{q['workerType']}: {q['pending']} pending and no live worker" for q in snap.queue
                  if q["pending"] and q.get("workersAlive") == 0]
        lost = [w["id"] for w in snap.workers if w["state"] == "lost"]
        if lost:
            alerts.append(f"{len(lost)} worker(s) lost: {', '.join(lost[:3])}")
        box = self.query_one("#alerts", Static)
        box.display = bool(alerts)
        self._update("#alerts", Text("⚠ " + " │ ".join(alerts), "bold white on dark_red"), alerts)

    def _queue(self, snap: Snapshot) -> None:
        narrow = self.has_class("-narrow")
        top = max([max(h) for h in snap.history.values() if h] or [0.0])
        t = Table(box=None, padding=(0, 1, 0, 0), expand=True, show_edge=False, header_style="bold")
        t.add_column("type", no_wrap=True, overflow="ellipsis", min_width=8 if narrow else 12, ratio=1)
        for name in ("pend", "oldest", "run", "done", "fail", "cxl", "wrk"):
            if narrow and name in ("oldest", "cxl"):
                continue
            t.add_column(name, justify="right", no_wrap=True)
        trend = 8 if narrow else 10
        t.add_column(f"0–{top:g}", no_wrap=True, width=trend, min_width=trend)
        sig: list[tuple[str, ...]] = []
        for row in snap.queue:
            oldest = row.get("oldestPendingAgeS")
            alive = row.get("workersAlive")
            cells: list[Any] = [row["workerType"], str(row["pending"])]
            if not narrow:
                cells.append(ms(int(oldest * 1000)) if oldest is not None else "-")
            cells += [str(row["running"]), str(row["completedLastHour"]),
                      Text(str(row["failedLastHour"]), "red" if row["failedLastHour"] else "")]
            if not narrow:
                cells.append(str(row.get("cancelledLastHour", "-")))
            cells.append(Text("-" if alive is None else str(alive),
                              "bold red" if alive == 0 and row["pending"] else ""))
            cells.append(Text(spark(snap.history.get(row["workerType"], []), top, trend), "cyan"))
            t.add_row(*cells)
            sig.append(tuple(str(c) for c in cells))
        per_org = org_usage_table(snap.orgs)  # (#19) only with several orgs or a budget
        self._update("#queue", Group(t, per_org) if per_org is not None else t, (narrow, top, sig, str(snap.orgs)))
        self.query_one("#queue-title", Static).update(Text.assemble(
            ("Queue ", "bold"), ("1h: done/fail/cxl · wrk: live · trend: pending", "bright_black")
            if not narrow else ("1h counts · trend: pending", "bright_black")))

    def _workers(self, snap: Snapshot) -> None:
        narrow = self.has_class("-narrow")
        order = {"busy": 0, "draining": 1, "lost": 2, "idle": 3, "stopped": 4}
        shown = sorted(snap.workers, key=lambda w: (order.get(w["state"], 5), w["id"]))
        # Only the rows the panel can show (its header takes one line): rendering all of 50 workers
        # to crop them to six was a fifth of an idle console's CPU. The title counts them all.
        fit = self.query_one("#workers", Static).size.height - 1
        if fit > 0:
            shown = shown[:fit]
        t = Table(box=None, padding=(0, 1, 0, 0), expand=True, show_edge=False, header_style="bold")
        t.add_column("worker", no_wrap=True, overflow="ellipsis", ratio=1, min_width=8)
        t.add_column("state", no_wrap=True)
        t.add_column("request", no_wrap=True, width=8)
        t.add_column("slots", no_wrap=True, justify="right")
        if not narrow:
            t.add_column("beat", no_wrap=True, justify="right")
        wsig: list[tuple[str, ...]] = []
        for wk in shown:
            name = wk["id"].removeprefix("worker-") if narrow else wk["id"]
            cells: list[Any] = [name, worker_state(wk, short=narrow), (wk.get("currentRequestId") or "-")[:8],
                                f"{wk['slotsBusy']}/{wk['slots']}"]
            if not narrow:
                beat = f"{wk['heartbeatAgeS']:.0f}s"
                cells.append(Text(beat, "red" if wk["state"] == "lost" else ""))
            t.add_row(*cells)
            wsig.append(tuple(str(c) for c in cells))
        self._update("#workers", t, (narrow, fit, wsig))
        counts: dict[str, int] = {}
        for wk in snap.workers:
            counts[wk["state"]] = counts.get(wk["state"], 0) + 1
        summary = " · ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda x: order.get(x[0], 5)))
        self.query_one("#workers-title", Static).update(
            Text.assemble(("Workers ", "bold"), (summary or "none", "bright_black")))

    def _update(self, selector: str, renderable: Any, signature: Any) -> None:
        """Update a Static only when what it shows changed: an idle console should not redraw."""
        if self._shown.get(selector) != signature:
            self._shown[selector] = signature
            self.query_one(selector, Static).update(renderable)

    def _columns(self, table: DataTable[Any]) -> list[str]:
        """(Re)build the columns when the width or the org column changes; the prompt fills the rest."""
        narrow = self.has_class("-narrow")
        width = max(table.size.width, 40)
        shape = (width, narrow, self.show_org)
        keys = [k for k, _, _ in COLUMNS if not (narrow and k in NARROW_DROP) and (k != "org" or self.show_org)]
        if shape != self._columns_for:
            self._columns_for = shape
            table.clear(columns=True)
            used = 0
            for key, label, w in COLUMNS:
                if key in keys:
                    arrow = ("▼" if self.sort_reverse else "▲") if key == self.sort_column or (
                        key == "age" and self.sort_column == "age") else ""
                    table.add_column(label + arrow, key=key, width=w)
                    used += w + 2
            table.add_column("prompt", key="prompt", width=max(10, width - used - 3))
        return keys

    def _fill_requests(self) -> None:
        table = self.query_one("#requests", StableTable)
        snap = self.eve.snapshot
        now = self.eve.clock()
        if not self.show_org and len({r.get("orgId") for r in snap.requests}) > 1:
            self.show_org = True  # sticky: an operator sees many orgs; the column does not come and go
        keys = self._columns(table)
        prompt_col = table.columns.get("prompt")  # type: ignore[call-overload]
        prompt_w = prompt_col.width if prompt_col is not None else 40
        requests = snap.requests
        if self.sort_column != "age" or not self.sort_reverse:
            requests = sorted(requests, key=sort_key(self.sort_column), reverse=self.sort_reverse)
        rows = []
        for r in requests:
            cost = (r.get("result") or {}).get("costUsd")
            cells = {"mark": Text("●", "yellow") if r["id"] in self.marked else " ", "id": r["id"][:8],
                     "status": status_text(r["status"]), "type": r["workerType"],
                     "org": r.get("orgSlug") or str(r.get("orgId", ""))[:8], "age": age(r["createdAt"], now),
                     "duration": ms(r.get("durationMs")), "cost": money(cost)}
            prompt = Text(first_line(r["prompt"], 500), no_wrap=True, overflow="ellipsis")
            prompt.truncate(prompt_w, overflow="ellipsis")
            rows.append((r["id"], [cells[k] for k in keys] + [prompt]))
        table.replace_rows(rows)
        total = snap.total
        count = f"{len(requests)} of {total:,}{'+' if snap.total_capped else ''}" if total is not None \
            else str(len(requests))
        if snap.search_error:
            count = "search refused"
        # the API's refusal of the search on screen, or else a filter refused before it was sent
        # (a refresh must not wipe that one: it came from the box, not from this snapshot)
        api_error = snap.search_error if snap.search == self.eve.search_params() else None
        self._filter_error(api_error or self._refused_filter)
        title = Text.assemble(("Requests ", "bold"), count)
        if self.filter_text:
            title.append(f"  search: {self.filter_text}", "yellow")
        if self.marked:
            title.append(f"  {len(self.marked)} marked (C cancel, R replay)", "bold yellow")
        self.query_one("#requests-title", Static).update(title)
        self._show_selection()

    def _show_selection(self) -> None:
        """The selected request's full id and row under the table: what Enter, Space and C/R act on."""
        table = self.query_one("#requests", StableTable)
        key = table.selected_key()
        where = f"{key} · {table.cursor_row + 1}/{table.row_count}" if key else ""
        panel = self.query_one("#requests-panel")
        if panel.border_subtitle != where:
            panel.border_subtitle = where

    def add_tail_event(self, event: dict[str, Any]) -> None:
        if not self._ready:
            self._early_events.append(event)
            return
        log = self.query_one("#tail", RichLog)
        log.auto_scroll = self.following
        log.write(event_text(event, with_request=True, utc=self.eve.utc))

    # -- interaction -------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.filter_text
        box.focus()

    def _filter_error(self, message: str | None) -> None:
        """The search's own error, under the search box (not a notification, not the header):
        a refused filter is not an outage, and the box stays open to correct it."""
        box = self.query_one("#filter-error", Static)
        if message:
            self.query_one("#filter", Input).display = True
            box.update(Text(f"⚠ {message}", "bold red"))
        box.display = bool(message)

    def set_filter(self, text: str) -> bool:
        """Search for `text`; False (and the reason under the box) when the filter is bad."""
        from eve.tui.app import parse_filter

        try:
            params = parse_filter(text, self.eve.clock(), self.eve.known_worker_types)
        except ValueError as exc:
            box = self.query_one("#filter", Input)
            box.display = True
            box.value = text
            self._refused_filter = str(exc)
            self._filter_error(str(exc))
            box.focus()
            return False
        self.filter_text = text.strip()
        self.eve.search = params
        self._refused_filter = None
        self._filter_error(None)
        self.query_one("#filter", Input).display = bool(self.filter_text)
        self.query_one("#requests-title", Static).update(Text.assemble(("Requests ", "bold"), "searching…"))
        self.eve.refresh_data()
        return True

    @on(Input.Submitted, "#filter")
    def _apply_filter(self, event: Input.Submitted) -> None:
        if self.set_filter(event.value):
            self.query_one("#requests", DataTable).focus()

    def action_clear_filter(self) -> None:
        if self.filter_text or self.query_one("#filter", Input).display:
            self.set_filter("")
        self.query_one("#requests", DataTable).focus()

    def action_open(self) -> None:
        key = self.query_one("#requests", StableTable).selected_key()
        if key:
            self.eve.open_request(key)

    @on(DataTable.RowSelected, "#requests")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.eve.open_request(str(event.row_key.value))

    @on(DataTable.RowHighlighted, "#requests")
    def _maybe_load_more(self, event: DataTable.RowHighlighted) -> None:
        self._show_selection()
        table = self.query_one("#requests", DataTable)
        if event.cursor_row >= table.row_count - 5 and not self.loading_more and self.eve.snapshot.next_cursor:
            self.loading_more = True
            self._load_more()

    @work(exclusive=True, group="more")
    async def _load_more(self) -> None:
        try:
            if await self.eve.load_more():
                self._fill_requests()
        except Exception as exc:  # noqa: BLE001 - shown, not fatal
            self.notify(f"could not load more: {getattr(exc, 'message', exc)}", severity="warning")
        finally:
            self.loading_more = False

    def action_sort(self, step: int) -> None:
        i = (SORTS.index(self.sort_column) + step) % len(SORTS)
        self.sort_column = SORTS[i]
        self.sort_reverse = self.sort_column in ("age", "duration", "cost")
        self._columns_for = None
        self._fill_requests()
        self.notify(f"sorted by {self.sort_column}", timeout=1.5)

    def action_mark(self) -> None:
        table = self.query_one("#requests", StableTable)
        key = table.selected_key()
        if key is None:
            return
        self.marked.symmetric_difference_update({key})
        self._fill_requests()
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def _bulk(self, verb: str) -> None:
        from eve.tui.screens.modals import ConfirmModal

        if self.eve.read_only:
            self.notify(f"read-only: {verb} is disabled", severity="warning")
            return
        if not self.marked:
            self.notify("mark requests with space first", severity="warning")
            return
        ids = sorted(self.marked)

        def go(ok: bool | None) -> None:
            if ok:
                self._run_bulk(verb, ids)

        listed = " ".join(rid[:8] for rid in ids[:12]) + (f" … and {len(ids) - 12} more" if len(ids) > 12 else "")
        self.app.push_screen(ConfirmModal(f"{verb.capitalize()} {len(ids)} marked request(s)? {listed}"), go)

    @work(group="bulk")
    async def _run_bulk(self, verb: str, ids: list[str]) -> None:
        ok, failed = 0, []
        for rid in ids:
            try:
                await (self.eve.client.cancel(rid) if verb == "cancel" else self.eve.client.replay(rid))
                ok += 1
            except Exception as exc:  # noqa: BLE001 - reported together below
                failed.append(f"{rid[:8]}: {getattr(exc, 'message', exc)}")
        self.marked.clear()
        self.notify(f"{verb}: {ok} done" + (f", {len(failed)} failed — {failed[0]}" if failed else ""),
                    severity="warning" if failed else "information")
        self.eve.refresh_data()

    def action_bulk_cancel(self) -> None:
        self._bulk("cancel")

    def action_bulk_replay(self) -> None:
        self._bulk("replay")

    def action_follow(self) -> None:
        log = self.query_one("#tail", RichLog)
        self.following = not self.following
        log.auto_scroll = self.following
        if self.following:
            log.scroll_end(animate=False)
        self.query_one("#tail-title", Static).update("Live tail" + ("" if self.following else " (paused: f follows)"))

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
        if action in ("new_request", "bulk_cancel", "bulk_replay") and self.eve.read_only:
            return None  # hidden from the footer and disabled
        return True
