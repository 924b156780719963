"""`eve ui`: the operator console. Talks to the API only, through an EveClient-like object.

The app owns one refresh loop (`@work(exclusive=True)`, rescheduled after each fetch so
fetches never pile up) and one live-tail stream; screens receive snapshots and render.
A fetch that gets no answer within `fetch_timeout` counts as a failure (a hung API must
not look live). When the API is down the header says so, the last data stays on screen,
and fetches back off (2 s, 4 s, ... 30 s). The requests table is a server-side search
(`GET /requests` with the filter's status/type/org/text/since), so it pages through the
whole history and knows the total. Pass a fake client and a fixed clock for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from rich.text import Text
from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.widgets import Input, TextArea

from eve.client import ApiError
from eve.tui.prefetch import PAGE
from eve.tui.screens.dashboard import DashboardScreen
from eve.tui.screens.modals import ConfirmModal, HelpScreen
from eve.tui.screens.questions import QuestionsScreen, pending_count, questions_badge
from eve.tui.screens.request import RequestScreen
from eve.tui.screens.schedules import SchedulesScreen
from eve.tui.screens.workers import WorkersScreen

HISTORY_SECONDS = 600
MIN_REFRESH = 1.0
MAX_PAGE = 500  # the API's largest `limit` for GET /requests
STATS_EVERY = 5  # refreshes between two fetches of GET /stats
STATUSES = ("pending", "claimed", "processing", "waiting", "completed", "failed", "cancelled")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# keys whose binding opens a text box (search, log filter, command palette): what follows them is text
OPENS_INPUT = ("slash", "colon", "ctrl+p")
HOLD_KEYS_S = 3.0  # a box that never takes the focus gives the held keys back after this long (a loaded box is slow)


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
    async def replay(self, request_id: str, **kw: Any) -> dict[str, Any]: ...
    async def stats(self, **kw: Any) -> dict[str, Any]: ...
    async def drain_worker(self, worker_id: str) -> dict[str, Any]: ...
    async def list_schedules(self, **kw: Any) -> list[dict[str, Any]]: ...
    async def update_schedule(self, schedule: str, **changes: Any) -> dict[str, Any]: ...
    async def run_schedule(self, schedule: str) -> dict[str, Any]: ...
    async def list_questions(self, **kw: Any) -> dict[str, Any]: ...
    async def answer_question(self, question_id: str, answer: str) -> dict[str, Any]: ...


@dataclass
class Snapshot:
    """Everything the dashboard shows, from one refresh."""

    queue: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    total: int | None = None
    total_capped: bool = False  # the API counted up to a cap: "at least total"
    next_cursor: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    stats: dict[str, Any] | None = None
    fetched_at: datetime | None = None
    orgs: list[dict[str, Any]] = field(default_factory=list)  # per-org pending/running/spend (GET /orgs)
    search: dict[str, Any] | None = None  # the search parameters `requests` answer
    search_error: str | None = None  # the API refused the search (shown under the search box)


def parse_filter(text: str, now: datetime, worker_types: Iterable[str] = ()) -> dict[str, Any]:
    """The `/` filter as search parameters: `status:a,b type:x org:x since:1h until:10m` + words (prompt/id).

    Raises ValueError with a message for the operator on a bad field: an empty value, and a
    type that is not one of `worker_types` (when known), which the API would answer with 0 rows.
    """
    params: dict[str, Any] = {}
    words = []
    types = sorted(worker_types)
    for word in text.split():
        name, sep, value = word.partition(":")
        name = name.lower()
        if not sep or name not in ("status", "type", "org", "since", "until", "sort"):
            words.append(word)
            continue
        if not value:
            raise ValueError(f"{name}: needs a value")
        if name == "type" and types and value not in types:
            raise ValueError(f"unknown worker type {value!r}; one of {', '.join(types)}")
        if name == "status":
            bad = [s for s in value.split(",") if s not in STATUSES]
            if bad:
                raise ValueError(f"unknown status {bad[0]!r}; one of {', '.join(STATUSES)}")
            params["status"] = value
        elif name == "type":
            params["worker_type"] = value
        elif name in ("since", "until"):
            params[name] = _ago(value, now)
        elif name == "sort":
            if value not in ("newest", "oldest"):
                raise ValueError("sort is newest or oldest")
            params["sort"] = value
        else:
            params["org"] = value
    if words:
        params["q"] = " ".join(words)
    return params


def _ago(value: str, now: datetime) -> str:
    try:
        at = now - timedelta(seconds=float(value[:-1]) * UNITS[value[-1]])
    except (KeyError, ValueError, IndexError):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r}: use an age like 30m, 2h, 1d or an ISO date") from None
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


async def _none() -> None:
    return None


class EveCommands(Provider):
    """`:` / ctrl+p: screens, filters, worker types, and a few operator shortcuts."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.app
        assert isinstance(app, EveApp)
        commands: list[tuple[str, Callable[[], Any], str]] = [
            ("dashboard", app.action_dashboard, "Queue, workers, requests, live tail"),
            ("workers", app.action_workers, "All workers; Enter tails a worker's log"),
            ("schedules", app.action_schedules, "Cron schedules: next fire, last result; pause, resume, run now"),
            ("questions", app.action_questions, "Questions agents ask: answer them (pending count in the header)"),
            ("replay last failed", app.action_replay_last_failed, "Replay the newest failed request (asks first)"),
            ("pause / resume refresh", app.action_toggle_pause, "Stop or restart fetching and the tail"),
            ("toggle UTC / local time", app.action_toggle_utc, "Show times in UTC or this machine's zone"),
            ("clear filter", lambda: app.set_filter(""), "Show all requests"),
            ("quit", app.exit, "Leave eve ui (also :q)"),
        ]
        if not app.read_only:
            commands.append(("new request", app.action_new_request, "Submit a request"))
        for wt in app.known_worker_types:
            commands.append((f"filter type:{wt}", lambda wt=wt: app.set_filter(f"type:{wt}"),
                             f"Show only {wt} requests"))
        for status in STATUSES:
            commands.append((f"filter status:{status}", lambda s=status: app.set_filter(f"status:{s}"),
                             f"Show only {status} requests"))
        return commands

    async def discover(self) -> Hits:
        for name, action, help_text in self._commands():
            yield DiscoveryHit(name, action, help=help_text)

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, EveApp)
        q = query.strip()
        if q in ("q", "q!", "quit", "wq"):
            yield Hit(1.0, "quit", app.exit, help="Leave eve ui")
        if q.startswith("req "):
            rid = q[4:].strip()
            yield Hit(1.0, f"req {rid}", lambda: app.open_request(rid), help="Open this request (id or its start)")
        if q.startswith(("filter ", "/")):
            text = q[7:] if q.startswith("filter ") else q[1:]
            yield Hit(0.9, f"filter {text}", lambda: app.set_filter(text), help="Search requests")
        matcher = self.matcher(query)
        for name, action, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), action, help=help_text)


class EveApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "eve"
    COMMANDS = App.COMMANDS | {EveCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "ctrl_c", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("colon", "command_palette", "Commands", key_display=":"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("t", "toggle_utc", "UTC/local", show=False),
        Binding("plus", "faster", "Faster", key_display="+", show=False),
        Binding("minus", "slower", "Slower", key_display="-", show=False),
        Binding("w", "workers", "Workers"),
        Binding("s", "schedules", "Schedules", show=False),  # in ? help and the palette
        Binding("a", "questions", "Questions", show=False),  # the header shows the pending count
    ]

    def __init__(self, client: Client, *, refresh_s: float = 2.0, read_only: bool = False,
                 worker_type: str | None = None, org: str | None = None,
                 clock: Callable[[], datetime] | None = None, live: bool = True,
                 fetch_timeout: float = 5.0, first_fetch: Awaitable[tuple[Any, ...]] | None = None) -> None:
        super().__init__()
        # started by `eve ui` before Textual was imported (eve.tui.prefetch): the first refresh
        # takes its answer instead of asking again
        self._first_fetch = first_fetch
        self.client = client
        self.refresh_s = max(MIN_REFRESH, refresh_s)
        self.read_only = read_only
        self.worker_type = worker_type
        self.org = org
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.live = live
        self.fetch_timeout = fetch_timeout
        self.paused = False
        self.utc = True
        self.connection = "connecting"
        self.last_error: str | None = None
        self.snapshot = Snapshot()
        self.fetch_count = 0
        self.known_worker_types: list[str] = []
        self.search: dict[str, Any] = {}
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self._held_events: deque[dict[str, Any]] = deque(maxlen=2000)
        self._backoff = self.refresh_s
        self._timer: Any = None
        self.pending_questions: int | None = None  # None: unknown (no questions endpoint)
        self._held_keys: list[events.Key] | None = None  # keys typed while a text box opens
        self._hold_timer: Any = None

    # -- lifecycle --------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen())
        self.refresh_data()
        if self.live:
            self.tail_events()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)

    # -- keys ---------------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """Input focus is modal: after a key that opens a text box, every key is text.

        Opening a box moves the focus later (Textual focuses on a later tick), so keys that
        arrive in the same burst as `/` (a paste, a lagging SSH link) used to reach the table
        and run as shortcuts (`/billing` opened the New request form). From such a key on,
        keys are held here until a text box has the focus, then handed to it in order.
        """
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._held_keys is not None:
                self._held_keys.append(event)
                return
            if (event.key in OPENS_INPUT and not isinstance(self.focused, (Input, TextArea))
                    and event.key in self.screen.active_bindings):
                self._held_keys = []
                self._hold_timer = self.set_timer(HOLD_KEYS_S, self._release_keys)
        await super().on_event(event)

    async def on_descendant_focus(self, _event: events.DescendantFocus) -> None:
        if self._held_keys is not None and isinstance(self.focused, (Input, TextArea)):
            await self._release_keys()

    async def _release_keys(self) -> None:
        """Dispatch the held keys as if they arrived now: to the box, if one took the focus."""
        held, self._held_keys = self._held_keys or [], None
        if self._hold_timer is not None:
            self._hold_timer.stop()
            self._hold_timer = None
        for key in held:
            await super().on_event(key)

    # -- data ---------------------------------------------------------------------------------

    def search_params(self) -> dict[str, Any]:
        params = {"worker_type": self.worker_type, "org": self.org, **self.search}
        return {k: v for k, v in params.items() if v is not None}

    async def _fetch(self) -> tuple[Any, ...]:
        """(queue, workers, page, stats or None): stats only when this refresh is due for them."""
        if self._first_fetch is not None:
            first, self._first_fetch = self._first_fetch, None
            return tuple(await first)
        stats_due = self.snapshot.stats is None or self.fetch_count % STATS_EVERY == 0  # the last hour moves slowly
        return tuple(await asyncio.gather(
            self.client.queue(), self.client.workers(),
            self._requests_page(),
            self._stats() if stats_due else _none()))

    async def _requests_page(self) -> dict[str, Any]:
        """The requests table's page; a search the API refuses (4xx: `org:nope` is a 404) is
        the filter's error, shown under the search box: the connection is fine and the other
        panels keep updating. It used to fail the whole refresh, saying `reconnecting`."""
        try:
            return await self.client.list_requests(limit=self._page_limit(), **self.search_params())
        except ApiError as exc:
            if not self.search or not 400 <= exc.status < 500 or exc.status in (401, 403, 429):
                raise
            return {"items": [], "nextCursor": None, "total": None, "refused": exc.message}

    def _page_limit(self) -> int:
        """As many rows as the table has loaded (`G`, scrolling) for this search: a refresh
        that fetched one page threw the others away and moved the cursor to another request."""
        if self.snapshot.search != self.search_params():
            return PAGE
        return min(MAX_PAGE, max(PAGE, len(self.snapshot.requests)))

    def _keep_loaded(self, page: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        """The refreshed rows, then loaded rows past what one fetch may ask for (over MAX_PAGE)."""
        items, cursor = page["items"], page.get("nextCursor")
        old = self.snapshot.requests
        if self.snapshot.search == self.search_params() and len(old) > MAX_PAGE and cursor:
            seen = {r["id"] for r in items}
            items = items + [r for r in old[len(items):] if r["id"] not in seen]
            cursor = self.snapshot.next_cursor
        return items, cursor

    @work(exclusive=True, group="refresh")
    async def refresh_data(self) -> None:
        """Fetch once, hand the snapshot to the screens, then schedule the next fetch."""
        if self.paused:
            return
        try:
            try:
                queue, workers, page, stats = await asyncio.wait_for(self._fetch(), self.fetch_timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"the API did not answer within {self.fetch_timeout:g}s") from None
            orgs = self.snapshot.orgs
            if stats is not None:  # the per-org usage moves as slowly as the last hour's stats
                orgs = await self._orgs()
            stats = stats if stats is not None else self.snapshot.stats
            self.pending_questions = await pending_count(self.client, self.fetch_timeout, self.pending_questions)
            self.known_worker_types = [q["workerType"] for q in queue]
            self.fetch_count += 1
            self._record_history(queue)
            items, next_cursor = self._keep_loaded(page)
            self.snapshot = Snapshot(queue=queue, workers=workers, requests=items, total=page.get("total"),
                                     total_capped=bool(page.get("totalCapped")),
                                     next_cursor=next_cursor, history=self._history_lists(),
                                     stats=stats, fetched_at=self.clock(), orgs=orgs, search=self.search_params(),
                                     search_error=page.get("refused"))
            self.connection, self.last_error = "live", None
            self._backoff = self.refresh_s
        except Exception as exc:  # noqa: BLE001 - any failure: keep the last data, say so, back off
            self.connection = "down" if self.connection in ("down", "connecting") else "reconnecting"
            self.last_error = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
            self._backoff = min(self._backoff * 2, 30.0)
        self._broadcast()
        self._schedule(self._backoff)

    async def _stats(self) -> dict[str, Any] | None:
        """The last hour's totals for the stats strip; an API without /stats just shows none."""
        try:
            return await asyncio.wait_for(self.client.stats(window="1h", worker_type=self.worker_type, org=self.org),
                                          self.fetch_timeout)
        except Exception:  # noqa: BLE001 - optional
            return None

    async def _orgs(self) -> list[dict[str, Any]]:
        """Per-org usage for the queue panel (#19); a client or API without GET /orgs shows none."""
        fetch = getattr(self.client, "orgs", None)
        if fetch is None:
            return []
        try:
            return list(await asyncio.wait_for(fetch(), self.fetch_timeout))
        except Exception:  # noqa: BLE001 - optional
            return []

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
        """Keyset pagination: the next page of the same search after what the table shows."""
        if not self.snapshot.next_cursor:
            return []
        page = await self.client.list_requests(limit=PAGE, cursor=self.snapshot.next_cursor, **self.search_params())
        seen = {r["id"] for r in self.snapshot.requests}
        self.snapshot.requests += [r for r in page["items"] if r["id"] not in seen]
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
                        if self.paused:
                            self._held_events.append(ev.data)  # shown on resume: pause freezes the tail too
                        else:
                            self._deliver(ev.data)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the refresh loop reports the connection state
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _deliver(self, event: dict[str, Any]) -> None:
        for screen in self.screen_stack:
            add = getattr(screen, "add_tail_event", None)
            if add is not None:
                add(event)

    # -- actions ------------------------------------------------------------------------------

    def header_text(self) -> Text:
        sep = (" │ ", "bright_black")
        line = Text.assemble(("eve", "bold"), sep)
        color = {"live": "green", "reconnecting": "yellow", "down": "red", "connecting": "yellow"}[self.connection]
        line.append(f"● {self.connection}", style=color)
        if (badge := questions_badge(self.pending_questions)) is not None:
            line.append_text(Text.assemble(sep, badge))
        if self.paused:
            line.append_text(Text.assemble(sep, ("PAUSED", "black on yellow")))
        if self.read_only:
            line.append_text(Text.assemble(sep, ("READ-ONLY", "black on cyan")))
        zone = "UTC" if self.utc else "local"
        line.append_text(Text.assemble(sep, (f"{self.clock().astimezone(timezone.utc if self.utc else None):%H:%M:%S}"
                                             f" {zone} │ {self.refresh_s:g}s", "bright_black"), sep,
                                       (self.client.base_url, "underline")))
        if self.last_error and self.connection != "live":
            line.append_text(Text.assemble(sep, (self.last_error, "red")))
        return line

    def action_ctrl_c(self) -> None:
        """Ctrl+C quits like q; with requests marked for a bulk action it asks first."""
        dash = self.dashboard()
        if dash is not None and dash.marked:
            def go(ok: bool | None) -> None:
                if ok:
                    self.exit()
            self.push_screen(ConfirmModal(f"Quit? {len(dash.marked)} marked request(s) will be unmarked."), go)
            return
        self.exit()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            while self._held_events:
                self._deliver(self._held_events.popleft())
            self.refresh_data()
        self._broadcast()

    def action_toggle_utc(self) -> None:
        self.utc = not self.utc
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

    def action_questions(self) -> None:
        if not isinstance(self.screen, QuestionsScreen):
            self.push_screen(QuestionsScreen())

    def action_dashboard(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def dashboard(self) -> DashboardScreen | None:
        dash = self.screen_stack[1] if len(self.screen_stack) > 1 else None
        return dash if isinstance(dash, DashboardScreen) else None

    def action_new_request(self) -> None:
        dash = self.dashboard()
        if dash is not None:
            dash.action_new_request()

    def set_filter(self, text: str) -> None:
        self.action_dashboard()
        dash = self.dashboard()
        if dash is not None:
            dash.set_filter(text)

    @work(group="open")
    async def open_request(self, request_id: str) -> None:
        """Open a request by its id or the start of it (the 8 characters the tables show)."""
        rid = request_id.strip().lower()
        if len(rid) < 36:
            found = await self.resolve_id(rid)
            if found is None:
                return
            rid = found
        self.push_screen(RequestScreen(rid))

    async def resolve_id(self, prefix: str) -> str | None:
        if len(prefix) < 4:
            self.notify("give at least 4 characters of the request id", severity="warning")
            return None
        local = {r["id"] for r in self.snapshot.requests if r["id"].startswith(prefix)}
        if len(local) == 1:
            return local.pop()
        try:
            page = await self.client.list_requests(q=prefix, limit=2, org=self.org)
        except Exception as exc:  # noqa: BLE001
            self.notify(f"cannot look up {prefix}: {getattr(exc, 'message', exc)}", severity="error")
            return None
        ids = [r["id"] for r in page["items"] if r["id"].startswith(prefix)]
        if len(ids) != 1:
            self.notify(f"no request id starts with {prefix}" if not ids else f"{prefix} is ambiguous; type more",
                        severity="warning")
            return None
        return ids[0]

    @work(exclusive=True, group="action")
    async def action_replay_last_failed(self) -> None:
        if self.read_only:
            self.notify("read-only: replay is disabled", severity="warning")
            return
        try:
            page = await self.client.list_requests(status="failed", limit=1, worker_type=self.worker_type,
                                                   org=self.org)
        except Exception as exc:  # noqa: BLE001
            self.notify(f"cannot search: {getattr(exc, 'message', exc)}", severity="error")
            return
        if not page["items"]:
            self.notify("no failed request")
            return
        target = page["items"][0]

        async def go(ok: bool | None) -> None:
            if not ok:
                return
            try:
                new = await self.client.replay(target["id"])
            except Exception as exc:  # noqa: BLE001
                self.notify(f"replay failed: {getattr(exc, 'message', exc)}", severity="error")
                return
            self.notify(f"replayed {target['id'][:8]} as {new['id'][:8]}")
            self.push_screen(RequestScreen(new["id"]))

        self.push_screen(ConfirmModal(f"Replay the last failed request {target['id'][:8]} "
                                      f"({target['workerType']})?"), go)
