"""`eve ui`: the operator console. Talks to the API only, through an EveClient-like object.

The app owns one refresh loop (`@work(exclusive=True)`, rescheduled after each fetch so
fetches never pile up) and one live-tail stream; screens receive snapshots and render.
When the API is down the header says so, the last data stays on screen, and fetches
back off (2 s, 4 s, ... 30 s). Pass a fake client and a fixed clock for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.screen import Screen

from eve.tui.screens.dashboard import DashboardScreen
from eve.tui.screens.modals import HelpScreen
from eve.tui.screens.request import RequestScreen
from eve.tui.screens.schedules import SchedulesScreen
from eve.tui.screens.workers import WorkersScreen

HISTORY_SECONDS = 600
MIN_REFRESH = 1.0


class Client(Protocol):
    """What the console needs from eve.client.EveClient (a fake satisfies it in tests)."""

    base_url: str

    async def queue(self) -> list[dict[str, Any]]: ...
    async def workers(self) -> list[dict[str, Any]]: ...
    async def list_requests(self, **kw: Any) -> dict[str, Any]: ...
    async def get_request(self, request_id: str) -> dict[str, Any]: ...
    async def get_result(self, request_id: str) -> dict[str, Any] | None: ...
    async def list_events(self, request_id: str, *, after: int = 0) -> list[dict[str, Any]]: ...
    def stream_events(self, request_id: str, *, after: int = 0) -> AsyncIterator[Any]: ...
    def firehose(self, **kw: Any) -> AsyncIterator[Any]: ...
    async def worker_logs(self, worker_id: str, *, after: int = 0) -> list[dict[str, Any]]: ...
    async def worker_types(self) -> list[dict[str, Any]]: ...
    async def create_request(self, worker_type: str, prompt: str, **kw: Any) -> dict[str, Any]: ...
    async def cancel(self, request_id: str) -> dict[str, Any]: ...
    async def replay(self, request_id: str) -> dict[str, Any]: ...
    async def list_schedules(self, **kw: Any) -> list[dict[str, Any]]: ...
    async def update_schedule(self, schedule: str, **changes: Any) -> dict[str, Any]: ...
    async def run_schedule(self, schedule: str) -> dict[str, Any]: ...


@dataclass
class Snapshot:
    """Everything the dashboard shows, from one refresh."""

    queue: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    fetched_at: datetime | None = None


class EveCommands(Provider):
    """`:` / ctrl+p: screens, worker types, and a few operator shortcuts."""

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, EveApp)
        matcher = self.matcher(query)
        commands: list[tuple[str, Callable[[], Any], str]] = [
            ("dashboard", app.action_dashboard, "Queue, workers, requests, live tail"),
            ("workers", app.action_workers, "All workers; Enter tails a worker's log"),
            ("schedules", app.action_schedules, "Cron schedules: next fire, last result; pause, resume, run now"),
            ("replay last failed", app.action_replay_last_failed, "Replay the newest failed request"),
            ("pause / resume refresh", app.action_toggle_pause, "Stop or restart fetching"),
        ]
        if not app.read_only:
            commands.append(("new request", app.action_new_request, "Submit a request"))
        for wt in app.known_worker_types:
            commands.append((f"filter type:{wt}", lambda wt=wt: app.set_filter(f"type:{wt}"),
                             f"Show only {wt} requests"))
        for status in ("failed", "pending", "processing", "completed"):
            commands.append((f"filter status:{status}", lambda s=status: app.set_filter(f"status:{s}"),
                             f"Show only {status} requests"))
        if query.startswith("req "):
            rid = query[4:].strip()
            yield Hit(1.0, f"req {rid}", lambda: app.open_request(rid), help="Open this request")
        for name, action, help_text in commands:
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), action, help=help_text)


class EveApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "eve"
    COMMANDS = App.COMMANDS | {EveCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("colon", "command_palette", "Commands", key_display=":"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("plus", "faster", "Faster", key_display="+", show=False),
        Binding("minus", "slower", "Slower", key_display="-", show=False),
        Binding("w", "workers", "Workers"),
        Binding("s", "schedules", "Schedules", show=False),  # in ? help and the palette
    ]

    def __init__(self, client: Client, *, refresh_s: float = 2.0, read_only: bool = False,
                 worker_type: str | None = None, org: str | None = None,
                 clock: Callable[[], datetime] | None = None, live: bool = True) -> None:
        super().__init__()
        self.client = client
        self.refresh_s = max(MIN_REFRESH, refresh_s)
        self.read_only = read_only
        self.worker_type = worker_type
        self.org = org
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.live = live
        self.paused = False
        self.connection = "connecting"
        self.last_error: str | None = None
        self.snapshot = Snapshot()
        self.fetch_count = 0
        self.known_worker_types: list[str] = []
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self._backoff = self.refresh_s
        self._timer: Any = None

    # -- lifecycle --------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen())
        self.refresh_data()
        if self.live:
            self.tail_events()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)

    # -- data ---------------------------------------------------------------------------------

    @work(exclusive=True, group="refresh")
    async def refresh_data(self) -> None:
        """Fetch once, hand the snapshot to the screens, then schedule the next fetch."""
        if self.paused:
            return
        try:
            queue, workers, page = await asyncio.gather(
                self.client.queue(), self.client.workers(),
                self.client.list_requests(limit=100, worker_type=self.worker_type, org=self.org))
            if not self.known_worker_types:
                self.known_worker_types = [q["workerType"] for q in queue]
            self.fetch_count += 1
            self._record_history(queue)
            self.snapshot = Snapshot(queue=queue, workers=workers, requests=page["items"],
                                     next_cursor=page.get("nextCursor"), history=self._history_lists(),
                                     fetched_at=self.clock())
            self.connection, self.last_error = "live", None
            self._backoff = self.refresh_s
        except Exception as exc:  # noqa: BLE001 - any failure: keep the last data, say so, back off
            self.connection = "down" if self.connection in ("down", "connecting") else "reconnecting"
            self.last_error = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
            self._backoff = min(self._backoff * 2, 30.0)
        self._broadcast()
        self._schedule(self._backoff)

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self.refresh_data)

    def _record_history(self, queue: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for q in queue:
            h = self._history.setdefault(q["workerType"], deque())
            h.append((now, int(q["pending"])))
            while h and now - h[0][0] > HISTORY_SECONDS:
                h.popleft()

    def _history_lists(self) -> dict[str, list[float]]:
        return {k: [float(v) for _, v in h] for k, h in self._history.items()}

    def _broadcast(self) -> None:
        for screen in self.screen_stack:
            update = getattr(screen, "update_snapshot", None)
            if update is not None:
                update(self.snapshot)

    async def load_more(self) -> list[dict[str, Any]]:
        """Keyset pagination: the next page after what the table shows."""
        if not self.snapshot.next_cursor:
            return []
        page = await self.client.list_requests(limit=100, worker_type=self.worker_type, org=self.org,
                                               cursor=self.snapshot.next_cursor)
        self.snapshot.requests += page["items"]
        self.snapshot.next_cursor = page.get("nextCursor")
        return page["items"]

    @work(exclusive=True, group="tail")
    async def tail_events(self) -> None:
        """The firehose into the dashboard's tail pane; reconnects with backoff, resuming by id."""
        last: str | None = None
        delay = 1.0
        while True:
            try:
                async for ev in self.client.firehose(worker_type=self.worker_type, org=self.org,
                                                     last_event_id=last):
                    if ev.event == "request_event" and isinstance(ev.data, dict):
                        last = ev.id or last
                        delay = 1.0
                        for screen in self.screen_stack:
                            add = getattr(screen, "add_tail_event", None)
                            if add is not None:
                                add(ev.data)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the refresh loop reports the connection state
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    # -- actions ------------------------------------------------------------------------------

    def header_text(self) -> Text:
        sep = (" │ ", "bright_black")
        line = Text.assemble(("eve", "bold"), sep, (self.client.base_url, "underline"), sep)
        color = {"live": "green", "reconnecting": "yellow", "down": "red", "connecting": "yellow"}[self.connection]
        line.append(f"● {self.connection}", style=color)
        if self.last_error and self.connection != "live":
            line.append(" │ ", style="bright_black")
            line.append(self.last_error[:80], style="red")
        if self.paused:
            line.append(" │ ", style="bright_black")
            line.append("PAUSED", style="black on yellow")
        if self.read_only:
            line.append(" │ ", style="bright_black")
            line.append("READ-ONLY", style="black on cyan")
        line.append(" │ ", style="bright_black")
        line.append(f"refresh {self.refresh_s:g}s │ {self.clock().astimezone(timezone.utc):%H:%M:%S} UTC",
                    style="bright_black")
        return line

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.refresh_data()
        self._broadcast()

    def action_faster(self) -> None:
        self.refresh_s = max(MIN_REFRESH, self.refresh_s - 1)
        self._broadcast()

    def action_slower(self) -> None:
        self.refresh_s = min(60.0, self.refresh_s + 1)
        self._broadcast()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.screen))

    def action_workers(self) -> None:
        if not isinstance(self.screen, WorkersScreen):
            self.push_screen(WorkersScreen())
            self._broadcast()

    def action_schedules(self) -> None:
        if not isinstance(self.screen, SchedulesScreen):
            self.push_screen(SchedulesScreen())

    def action_dashboard(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def action_new_request(self) -> None:
        dash = self.screen_stack[1] if len(self.screen_stack) > 1 else None
        if isinstance(dash, DashboardScreen):
            dash.action_new_request()

    def set_filter(self, text: str) -> None:
        self.action_dashboard()
        dash = self.screen_stack[-1]
        if isinstance(dash, DashboardScreen):
            dash.set_filter(text)

    def open_request(self, request_id: str) -> None:
        self.push_screen(RequestScreen(request_id))

    @work(exclusive=True, group="action")
    async def action_replay_last_failed(self) -> None:
        if self.read_only:
            self.notify("read-only: replay is disabled", severity="warning")
            return
        failed = [r for r in self.snapshot.requests if r["status"] == "failed"]
        if not failed:
            self.notify("no failed request in view")
            return
        self.open_request(failed[0]["id"])
