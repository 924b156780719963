"""Drill-down into one request: metadata, prompt, result, live event timeline; replay/cancel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, RichLog, Static

from eve.tui.screens.base import EveScreen
from eve.tui.widgets.format import event_text, money, ms, status_text
from eve.tui.widgets.header import StatusHeader


class RequestScreen(EveScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("o", "output", "Output JSON"),
        Binding("r", "replay", "Replay"),
        Binding("c", "cancel", "Cancel"),
        Binding("y", "copy_id", "Copy id"),
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
                yield Static("", id="result")
                yield Static("", id="prompt")
            with Vertical(id="timeline-panel", classes="panel"):
                yield Static("Timeline", classes="panel-title")
                yield RichLog(id="timeline", wrap=True, markup=False, max_lines=5000)
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        self.query_one(StatusHeader).refresh_text()
        self.load()

    def update_snapshot(self, _snapshot: Any) -> None:
        if self._ready:
            self.query_one(StatusHeader).refresh_text()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("replay", "cancel") and self.eve.read_only:
            return None
        if action == "cancel" and self.request is not None and self.request["status"] in (
                "completed", "failed", "cancelled"):
            return None
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
        events = await self.eve.client.list_events(self.request_id)
        timeline = self.query_one("#timeline", RichLog)
        for ev in events:
            timeline.write(event_text(ev))
            self.last_event_id = ev["id"]
        if self.request["status"] not in ("completed", "failed", "cancelled") and self.eve.live:
            self.follow()

    @work(exclusive=True, group="timeline")
    async def follow(self) -> None:
        timeline = self.query_one("#timeline", RichLog)
        try:
            async for ev in self.eve.client.stream_events(self.request_id, after=self.last_event_id):
                if ev.event == "request_event" and isinstance(ev.data, dict):
                    if ev.data["id"] > self.last_event_id:
                        timeline.write(event_text(ev.data))
                        self.last_event_id = ev.data["id"]
                elif ev.event == "end":
                    break
        except Exception as exc:  # noqa: BLE001 - a broken stream: say so, reload
            timeline.write(Text(f"(stream interrupted: {getattr(exc, 'message', exc)})", "yellow"))
            await asyncio.sleep(2)
        self.request = await self.eve.client.get_request(self.request_id)
        self.result = await self.eve.client.get_result(self.request_id)
        self._show()
        self.refresh_bindings()

    def _show(self) -> None:
        r = self.request
        assert r is not None
        meta = Text()
        rows = [("status", status_text(r["status"])), ("type", Text(r["workerType"])),
                ("created", Text(r["createdAt"] or "-")), ("attempts", Text(f"{r['attempts']}/{r['maxAttempts']}")),
                ("claimed by", Text(r.get("claimedBy") or "-")), ("queued", Text(ms(r.get("queuedMs")))),
                ("duration", Text(ms(r.get("durationMs")))),
                ("config", Text(json.dumps(r.get("config") or {}))),
                ("context", Text(json.dumps(r.get("context") or {})[:300]))]
        if r.get("replayOf"):
            rows.append(("replay of", Text(r["replayOf"])))
        if r.get("scheduleId"):
            rows.append(("schedule", Text(r["scheduleId"])))
        for key, value in rows:
            meta.append(f"{key:>10}  ", style="bold")
            meta.append_text(value)
            meta.append("\n")
        self.query_one("#meta", Static).update(meta)
        res = Text()
        if self.result:
            x = self.result
            res.append("    result  ", style="bold")
            res.append_text(status_text(x["status"]))
            res.append(f"   tokens {x.get('tokensUsed') or '-'}   cost {money(x.get('costUsd'))}   "
                       f"took {ms(x.get('durationMs'))}\n")
            if x.get("errorCode"):
                res.append(f"     error  {x['errorCode']}: {x.get('error') or ''}\n", style="red")
            if x.get("summary"):
                res.append(f"   summary  {x['summary'][:500]}\n")
        self.query_one("#result", Static).update(res)
        self.query_one("#prompt", Static).update(Text.assemble(("    prompt  ", "bold"), r["prompt"][:2000]))

    # -- actions -----------------------------------------------------------------------------------

    def action_output(self) -> None:
        from eve.tui.screens.modals import OutputScreen

        output = (self.result or {}).get("output")
        self.app.push_screen(OutputScreen(json.dumps(output, indent=2) if output is not None
                                          else "(no output yet)"))

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

    @work(group="act")
    async def _replay(self) -> None:
        try:
            new = await self.eve.client.replay(self.request_id)
        except Exception as exc:  # noqa: BLE001
            self.notify(f"replay failed: {getattr(exc, 'message', exc)}", severity="error")
            return
        self.notify(f"replayed as {new['id'][:8]}")
        self.app.pop_screen()
        self.eve.open_request(new["id"])

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
