"""Questions agents ask people: the header count, the questions screen and the answer dialog.

The count of pending questions is fetched with each refresh (one small call, `limit=1`;
the API returns the total) and shown in the header, bright when someone is waited for.
`a` opens the questions screen from anywhere; there Enter answers the selected question,
`o` opens its request, `v` switches between pending and all. The answer dialog shows the
options as buttons (keys 1-9) or a text field for a free-text answer, asks y/n before it
sends (an answer cannot be taken back), and is also
reachable with `a` from a waiting request's view. Question texts come from agents: they
are shown as plain text, never as markup. Answering is hidden with --read-only.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Static

from eve.cli.output import duration
from eve.tui.screens.base import EveScreen
from eve.tui.widgets.format import age, first_line, ts
from eve.tui.widgets.header import StatusHeader
from eve.tui.widgets.table import StableTable

if TYPE_CHECKING:
    from eve.tui.app import EveApp, Snapshot

COLUMNS = ("id", "asked", "question", "options", "expires in", "status", "request", "type", "org")
STATUS_STYLE = {"pending": "bold yellow", "answered": "green", "expired": "red", "cancelled": "bright_black"}


async def pending_count(client: Any, timeout: float, last: int | None) -> int | None:
    """Pending questions the caller may answer; the last known count when the call fails,
    None when the API has no questions endpoint (the header then shows nothing)."""
    fetch = getattr(client, "list_questions", None)
    if fetch is None:
        return None
    try:
        page = await asyncio.wait_for(fetch(status="pending", limit=1), timeout)
    except Exception:  # noqa: BLE001 - the refresh loop reports the connection state
        return last
    return int(page.get("total") or 0)


def questions_badge(count: int | None) -> Text | None:
    if count is None:
        return None
    label = f"{count} question{'' if count == 1 else 's'}"
    return Text(f" {label} (a) " if count else label, style="bold black on bright_yellow" if count else "bright_black")


def _expires_in(q: dict[str, Any], app: EveApp) -> str:
    at = ts(q.get("expiresAt"))
    if at is None or q["status"] != "pending":
        return "-"
    secs = (at - app.clock()).total_seconds()
    return "due" if secs <= 0 else duration(secs)


class QuestionsScreen(EveScreen):
    DEFAULT_CSS = "#questions-big { height: 1fr; }"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "answer", "Answer"),
        Binding("o", "open_request", "Request"),
        Binding("v", "toggle_view", "Pending/All"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.questions: list[dict[str, Any]] = []
        self.total = 0
        self.pending_only = True
        self.fetch_error: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        with Vertical(classes="panel", id="questions-big"):
            yield Static("Questions", classes="panel-title", id="questions-title")
            yield StableTable(id="question-grid", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#question-grid", DataTable).add_columns(*COLUMNS)
        self._ready = True
        self.query_one(StatusHeader).refresh_text()
        self.load()
        self.query_one("#question-grid", DataTable).focus()

    def update_snapshot(self, _snap: Snapshot) -> None:
        if self._ready:
            self.query_one(StatusHeader).refresh_text()
            self.load()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "answer" and self.eve.read_only:
            return None
        return True

    @work(exclusive=True, group="questions")
    async def load(self) -> None:
        try:
            page = await self.eve.client.list_questions(status="pending" if self.pending_only else None, limit=200)
            self.questions, self.total = page["items"], page["total"]
            self.fetch_error = None
        except Exception as exc:  # noqa: BLE001 - keep the last list, say why it is stale
            self.fetch_error = getattr(exc, "message", None) or str(exc)
        self._fill()

    def _fill(self) -> None:
        which = "pending, longest waiting first" if self.pending_only else "all, newest first"
        title = Text.assemble((f"Questions ({self.total}, {which})", "bold"),
                              " — Enter answer · o request · v pending/all",
                              (f"  (stale: {self.fetch_error[:60]})" if self.fetch_error else "", "red"))
        self.query_one("#questions-title", Static).update(title)
        now = self.eve.clock()
        width = 30 if self.app.size.width < 100 else 40
        rows = []
        for q in self.questions:
            options = Text(first_line(" / ".join(q["options"]), 24)) if q["options"] else \
                Text("(free text)", "bright_black")
            rows.append((q["id"], [q["id"][:8], age(q["askedAt"], now), Text(first_line(q["question"], width)),
                                   options, _expires_in(q, self.eve),
                                   Text(q["status"], STATUS_STYLE.get(q["status"], "")), q["requestId"][:8],
                                   q.get("workerType") or "", q.get("orgSlug") or ""]))
        # by id, in place: the cursor stays on its question, and j/k/g/G move it (StableTable)
        self.query_one("#question-grid", StableTable).replace_rows(rows)

    def current(self) -> dict[str, Any] | None:
        t = self.query_one("#question-grid", DataTable)
        if not t.row_count:
            return None
        key = t.coordinate_to_cell_key((t.cursor_row, 0)).row_key.value
        return next((q for q in self.questions if q["id"] == key), None)

    @on(DataTable.RowSelected, "#question-grid")
    def _selected(self, _event: DataTable.RowSelected) -> None:
        self.action_answer()

    def action_answer(self) -> None:
        q = self.current()
        if q is None or self.eve.read_only:
            return
        if q["status"] != "pending":
            self.notify(f"question {q['id'][:8]} is {q['status']}", severity="warning")
            return
        self.app.push_screen(AnswerModal(q), lambda _done: self.load())

    def action_open_request(self) -> None:
        q = self.current()
        if q is not None:
            self.eve.open_request(q["requestId"])

    def action_toggle_view(self) -> None:
        self.pending_only = not self.pending_only
        self.load()


class AnswerModal(ModalScreen["dict[str, Any] | None"]):
    """One question with its options as buttons (1-9), or a text field; sends the answer itself
    so a refusal (someone answered first, it expired) is shown right here."""

    BINDINGS = [Binding("escape", "dismiss_none", "Cancel")]
    DEFAULT_CSS = """
    AnswerModal #answer-box { width: 84; }
    AnswerModal #answer-question { margin: 1 0; }
    AnswerModal #answer-options { height: auto; margin: 0 0 1 0; }
    AnswerModal #answer-options Button { margin: 0 1 0 0; }
    AnswerModal #answer-error { height: auto; }
    AnswerModal.-narrow #answer-box { padding: 0 1; border: round $accent; }
    """

    def __init__(self, question: dict[str, Any]) -> None:
        super().__init__()
        self.question = question
        self.sending = False

    def compose(self) -> ComposeResult:
        q = self.question
        opts = q["options"]
        with Vertical(classes="modal-box", id="answer-box"):
            yield Static(Text(f"Question from request {q['requestId'][:8]} "
                              f"({q.get('workerType') or '?'}, {q.get('orgSlug') or '?'})", "bold"),
                         classes="panel-title")
            yield Static(Text(q["question"]), id="answer-question")
            if opts:
                layout = Horizontal if len(opts) <= 4 and sum(len(o) for o in opts) <= 48 else Vertical
                with layout(id="answer-options"):
                    for i, option in enumerate(opts):
                        key = f"{i + 1}: " if i < 9 else ""
                        yield Button(Text(f"{key}{option}"), id=f"option-{i}",
                                     variant="primary" if i == 0 else "default")
                hint = "press 1-9 or click an option · esc cancels"
            else:
                yield Input(placeholder="your answer (free text), Enter sends", id="answer-input")
                hint = "Enter sends · esc cancels"
            yield Static(Text(hint, "bright_black"), classes="hint")
            yield Static("", id="answer-error")

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < 100, "-narrow")
        if not self.question["options"]:
            self.query_one("#answer-input", Input).focus()

    def on_key(self, event: Any) -> None:
        opts = self.question["options"]
        if opts and event.character and event.character.isdigit():
            i = int(event.character) - 1
            if 0 <= i < min(len(opts), 9):
                event.stop()
                self.choose(opts[i])

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("option-"):
            self.choose(self.question["options"][int(event.button.id.split("-")[1])])

    @on(Input.Submitted, "#answer-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.choose(event.value)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def choose(self, answer: str) -> None:
        """Ask y/n before sending, like every other action: an answer cannot be taken back,
        and one stray digit used to tell a production deploy to go ahead."""
        from eve.tui.screens.modals import ConfirmModal

        if self.sending:
            return
        q = self.question
        shown = answer if len(answer) <= 60 else answer[:59] + "…"

        def go(ok: bool | None) -> None:
            if ok:
                self.send(answer)

        self.app.push_screen(ConfirmModal(f"Answer {shown!r} to question {q['id'][:8]} of request "
                                          f"{q['requestId'][:8]}? The agent resumes with it."), go)

    @work(exclusive=True, group="answer")
    async def send(self, answer: str) -> None:
        if self.sending:
            return
        self.sending = True
        error = self.query_one("#answer-error", Static)
        error.update(Text("sending…", "bright_black"))
        try:
            done = await self.app.client.answer_question(self.question["id"], answer)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - shown in the dialog: 400 lists the options, 409 says who
            error.update(Text(getattr(exc, "message", None) or str(exc), "red"))
            self.sending = False
            return
        self.app.notify(f"answered {self.question['id'][:8]}: {done.get('answer')} — "
                        f"request {self.question['requestId'][:8]} resumes")
        self.dismiss(done)


async def answer_for_request(app: EveApp, request_id: str) -> None:
    """From the request view: the dialog for its pending question (the oldest, if several)."""
    try:
        page = await app.client.list_questions(status="pending", request_id=request_id, limit=10)
    except Exception as exc:  # noqa: BLE001
        app.notify(f"cannot load its questions: {getattr(exc, 'message', exc)}", severity="error")
        return
    if not page["items"]:
        app.notify(f"request {request_id[:8]} has no open question", severity="warning")
        return
    await app.push_screen(AnswerModal(page["items"][0]))
