"""Drill-down into one request: metadata, prompt, result, live event timeline; replay/cancel.

While the request runs, its fields (status, duration, attempts) are re-read on every refresh,
not only its timeline. The timeline shows each event once: a reload starts it over.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, OptionList, RichLog, Static
from textual.widgets.option_list import Option

from eve.tui.screens.base import EveScreen
from eve.tui.widgets.format import clock, event_text, money, ms, status_text, ts
from eve.tui.widgets.header import StatusHeader

FINISHED = ("completed", "failed", "cancelled")


class RequestScreen(EveScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("o", "output", "Output JSON"),
        Binding("r", "replay", "Replay"),
        Binding("e", "edit_replay", "Edit+replay"),
        Binding("c", "cancel", "Cancel"),
        Binding("y", "copy_id", "Copy id"),
        Binding("a", "answer", "Answer"),  # its open question (shown while it waits)
    ]

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id
        self.request: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self.last_event_id = 0

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Horizontal(id="request-body"):
            with VerticalScroll(id="request-meta", classes="panel"):
                yield Static(f"Request {self.request_id}", classes="panel-title", id="request-title")
                yield Static("loading…", id="meta")
                # parent and children (orchestration); Enter opens one. Hidden when there are none.
                title, family = Static("Tree (Enter opens)", classes="panel-title", id="family-title"), \
                    OptionList(id="family")
                title.display = family.display = False
                yield title
                yield family
            with Vertical(id="timeline-panel", classes="panel"):
                yield Static("Timeline", classes="panel-title")
                yield RichLog(id="timeline", wrap=True, markup=False, max_lines=5000)
        yield Footer()

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < 100, "-narrow")
        self._ready = True
        self.query_one(StatusHeader).refresh_text()
        self.load()

    def on_resize(self) -> None:
        self.set_class(self.app.size.width < 100, "-narrow")

    def update_snapshot(self, _snapshot: Any) -> None:
        if not self._ready:
            return
        self.query_one(StatusHeader).refresh_text()
        if self.request is not None and self.request["status"] not in FINISHED:
            self.reload_fields()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("replay", "cancel", "edit_replay") and self.eve.read_only:
            return None
        if action == "cancel" and self.request is not None and self.request["status"] in FINISHED:
            return None
        if action == "answer":
            return (self.request or {}).get("status") == "waiting" and not self.eve.read_only
        return True

    @work(exclusive=True, group="request")
    async def load(self) -> None:
        try:
            self.request = await self.eve.client.get_request(self.request_id)
            self.result = await self.eve.client.get_result(self.request_id)
        except Exception as exc:  # noqa: BLE001 - shown on screen
            self.query_one("#meta", Static).update(Text(f"cannot load: {getattr(exc, 'message', exc)}", "red"))
            return
        self._show()
        self.refresh_bindings()
        await self._show_family()
        events = await self.eve.client.list_events(self.request_id)
        timeline = self.query_one("#timeline", RichLog)
        timeline.clear()
        self.last_event_id = 0
        for ev in events:
            self._add_event(ev)
        if self.request["status"] not in FINISHED and self.eve.live:
            self.follow()

    def _add_event(self, ev: dict[str, Any]) -> None:
        if ev["id"] > self.last_event_id:
            self.query_one("#timeline", RichLog).write(event_text(ev, utc=self.eve.utc))
            self.last_event_id = ev["id"]

    @work(exclusive=True, group="fields")
    async def reload_fields(self) -> None:
        try:
            self.request = await self.eve.client.get_request(self.request_id)
            if self.request["status"] in FINISHED:
                self.result = await self.eve.client.get_result(self.request_id)
        except Exception:  # noqa: BLE001 - the header already says the API is away
            return
        self._show()
        self.refresh_bindings()

    @work(exclusive=True, group="timeline")
    async def follow(self) -> None:
        timeline = self.query_one("#timeline", RichLog)
        try:
            async for ev in self.eve.client.stream_events(self.request_id, after=self.last_event_id):
                if ev.event == "request_event" and isinstance(ev.data, dict):
                    self._add_event(ev.data)
                elif ev.event == "end":
                    break
        except Exception as exc:  # noqa: BLE001 - a broken stream: say so, reload
            timeline.write(Text(f"(stream interrupted: {getattr(exc, 'message', exc)})", "yellow"))
            await asyncio.sleep(2)
        self.request = await self.eve.client.get_request(self.request_id)
        self.result = await self.eve.client.get_result(self.request_id)
        self._show()
        self.refresh_bindings()

    async def _show_family(self) -> None:
        """The parent (↑) and the children (↳ status, result or prompt) as a list to open."""
        try:
            kids = await self.eve.client.children(self.request_id)
        except Exception:  # noqa: BLE001 - an older API without trees: show none
            kids = []
        parent = (self.request or {}).get("parentId")
        options = [Option(Text(f"↑ parent {parent}"), id=parent)] if parent else []
        for k in kids:
            res = k.get("result") or {}
            label = Text.assemble(f"↳ {k['id'][:8]} ", status_text(k["status"]),
                                  f"  {(res.get('summary') or res.get('error') or k['prompt'] or '')[:60]}")
            options.append(Option(label, id=k["id"]))
        family = self.query_one("#family", OptionList)
        family.clear_options()
        family.add_options(options)
        for widget in (self.query_one("#family-title"), family):
            widget.display = bool(options)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "family" and event.option.id:
            self.app.push_screen(RequestScreen(event.option.id))

    def _show(self) -> None:
        r = self.request
        assert r is not None
        utc = self.eve.utc
        grid = Table.grid(padding=(0, 2))
        grid.add_column(justify="right", style="bold", no_wrap=True)
        grid.add_column(overflow="fold")  # wrapped values stay in their column
        created = ts(r.get("createdAt"))
        grid.add_row("status", status_text(r["status"]))
        grid.add_row("type", r["workerType"])
        if r.get("orgSlug"):
            grid.add_row("org", r["orgSlug"])
        grid.add_row("created", clock(created, utc, "%Y-%m-%d %H:%M:%S") + (" UTC" if utc else ""))
        grid.add_row("attempts", f"{r['attempts']}/{r['maxAttempts']}")
        grid.add_row("worker", r.get("claimedBy") or "-")
        grid.add_row("queued", ms(r.get("queuedMs")))
        running = r["status"] not in FINISHED and r.get("startedAt")
        grid.add_row("wall time", ms(r.get("durationMs")) + (" so far" if running else "")
                     + ("  (start → finish, as the queue saw it)" if not running and r.get("durationMs") else ""))
        grid.add_row("config", json.dumps(r.get("config") or {}))
        grid.add_row("context", json.dumps(r.get("context") or {})[:300])
        if r.get("replayOf"):
            grid.add_row("replay of", r["replayOf"])
        if r.get("scheduleId"):
            grid.add_row("schedule", r["scheduleId"])
        if self.result:
            x = self.result
            grid.add_row("", "")
            grid.add_row("result", status_text(x["status"]))
            grid.add_row("agent time", ms(x.get("durationMs")) + "  (as Claude Code reported it)")
            grid.add_row("tokens", f"{x.get('tokensUsed') or '-'}")
            grid.add_row("cost", money(x.get("costUsd")))
            if x.get("errorCode"):
                grid.add_row(Text("error", "red"), Text(f"{x['errorCode']}: {x.get('error') or ''}", "red"))
            if x.get("summary"):
                grid.add_row("summary", x["summary"][:500])
        grid.add_row("", "")
        grid.add_row("prompt", r["prompt"][:2000])
        self.query_one("#meta", Static).update(grid)

    # -- actions -----------------------------------------------------------------------------------

    def action_output(self) -> None:
        from eve.tui.screens.modals import OutputScreen

        output = (self.result or {}).get("output")
        self.app.push_screen(OutputScreen(json.dumps(output, indent=2) if output is not None
                                          else "(no output yet)"))

    @work(group="act")
    async def action_answer(self) -> None:
        from eve.tui.screens.questions import answer_for_request

        await answer_for_request(self.eve, self.request_id)

    def action_copy_id(self) -> None:
        # OSC 52: the terminal (also over SSH) puts the id on the local clipboard
        self.app.copy_to_clipboard(self.request_id)
        self.notify(f"copied {self.request_id}")

    def action_replay(self) -> None:
        from eve.tui.screens.modals import ConfirmModal

        if self.eve.read_only:
            return

        def go(ok: bool | None) -> None:
            if ok:
                self._replay()

        self.app.push_screen(ConfirmModal(f"Replay request {self.request_id[:8]} as a new request?"), go)

    def action_edit_replay(self) -> None:
        """Replay with the prompt edited first (the new request keeps type, context and config)."""
        from eve.tui.screens.modals import EditPromptModal

        if self.eve.read_only or self.request is None:
            return

        def go(prompt: str | None) -> None:
            if prompt:
                self._replay(prompt)

        self.app.push_screen(EditPromptModal(self.request["prompt"]), go)

    @work(group="act")
    async def _replay(self, prompt: str | None = None) -> None:
        try:
            new = await (self.eve.client.replay(self.request_id, prompt=prompt) if prompt
                         else self.eve.client.replay(self.request_id))
        except Exception as exc:  # noqa: BLE001
            self.notify(f"replay failed: {getattr(exc, 'message', exc)}", severity="error")
            return
        self.notify(f"replayed as {new['id'][:8]}")
        self.app.pop_screen()
        self.app.push_screen(RequestScreen(new["id"]))

    def action_cancel(self) -> None:
        from eve.tui.screens.modals import ConfirmModal

        if self.eve.read_only:
            return

        def go(ok: bool | None) -> None:
            if ok:
                self._cancel()

        self.app.push_screen(ConfirmModal(f"Cancel request {self.request_id[:8]}?"), go)

    @work(group="act")
    async def _cancel(self) -> None:
        try:
            await self.eve.client.cancel(self.request_id)
        except Exception as exc:  # noqa: BLE001
            self.notify(f"cancel failed: {getattr(exc, 'message', exc)}", severity="error")
            return
        self.notify("cancel requested")
        self.load()
