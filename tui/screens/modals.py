"""Modal screens: help, y/n confirm, new-request form, edit-and-replay, raw output viewer."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Select, Static, TextArea


# the keys every table and list shares (StableTable's bindings, Textual's focus chain)
MOVING = [("j k ↑ ↓", "down, up (every table)"), ("g G home end", "top, bottom"),
          ("ctrl+d ctrl+u", "page down, up"), ("tab shift+tab", "next, previous panel (the focused one is outlined)")]


class HelpScreen(ModalScreen[None]):
    """Every binding of the screen it was opened from, plus the app's."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close"),
                Binding("j", "scroll(1)", "Down", show=False), Binding("k", "scroll(-1)", "Up", show=False)]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        lines = Text()
        lines.append(f"Keys — {type(self.under).__name__.replace('Screen', '') or 'screen'}\n\n", style="bold")
        seen = set()
        for binding in [*self.under.BINDINGS, *self.app.BINDINGS]:
            if not hasattr(binding, "key"):
                continue
            key = binding.key_display or binding.key
            if key in seen:
                continue
            seen.add(key)
            lines.append(f"{key:>12}", style="bold cyan")
            lines.append(f"  {binding.description or binding.action}\n")
        lines.append(f"{'ctrl+p':>12}", style="bold cyan")
        lines.append("  Command palette (same as :)\n")
        lines.append("\nMoving\n", style="bold")
        for key, what in MOVING:
            lines.append(f"{key:>12}", style="bold cyan")
            lines.append(f"  {what}\n")
        with Vertical(id="help-box", classes="modal-box"):
            # scrolls (j/k, arrows, pgup/pgdn) when the terminal is shorter than the help
            with VerticalScroll(id="help-scroll"):
                yield Static(lines, id="help-text")
            yield Static("esc closes · j/k scroll", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#help-scroll", VerticalScroll).focus()

    def action_scroll(self, step: int) -> None:
        self.query_one("#help-scroll", VerticalScroll).scroll_relative(y=step, animate=False)


class ConfirmModal(ModalScreen[bool]):
    BINDINGS = [Binding("y", "yes", "Yes"), Binding("n,escape", "no", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box", id="confirm-box"):
            yield Label(self.question, id="question")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", variant="primary", id="yes")
                yield Button("No (n)", id="no")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class NewRequestModal(ModalScreen[dict[str, Any] | None]):
    BINDINGS = [Binding("escape", "dismiss_none", "Cancel"), Binding("ctrl+s", "submit", "Submit")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box", id="new-box"):
            yield Static("New request", classes="panel-title")
            yield Select([], prompt="worker type", id="worker-type", allow_blank=True)
            yield TextArea(id="prompt-area")
            with Horizontal(id="new-options"):
                yield Input(placeholder="variant (optional, e.g. mclaude)", id="variant")
                yield Input(placeholder="timeout (optional, e.g. 30m)", id="timeout")
            yield Static("", id="new-error")
            with Horizontal(id="new-buttons"):
                yield Button("Submit (ctrl+s)", variant="primary", id="submit")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.set_class(self.app.size.height < 30 or self.app.size.width < 100, "-narrow")
        self.load_types()
        self.query_one("#prompt-area", TextArea).focus()

    @work
    async def load_types(self) -> None:
        app: Any = self.app
        try:
            types = await app.client.worker_types()
        except Exception as exc:  # noqa: BLE001
            self.query_one("#new-error", Static).update(Text(f"cannot load worker types: {exc}", "red"))
            return
        select = self.query_one("#worker-type", Select)
        select.set_options([(t["id"], t["id"]) for t in types])
        if types:
            select.value = "general" if any(t["id"] == "general" for t in types) else types[0]["id"]

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        self._submit()

    @work(exclusive=True)
    async def _submit(self) -> None:
        from eve.cli._client import parse_timeout_ms

        error = self.query_one("#new-error", Static)
        wt = self.query_one("#worker-type", Select).value
        prompt = self.query_one("#prompt-area", TextArea).text
        variant = self.query_one("#variant", Input).value.strip()
        timeout = self.query_one("#timeout", Input).value.strip()
        if not isinstance(wt, str):
            error.update(Text("pick a worker type", "red"))
            return
        if not prompt.strip():
            error.update(Text("the prompt is empty", "red"))
            return
        config: dict[str, Any] = {}
        if variant:
            config["variant"] = variant
        try:
            if timeout:
                config["timeoutMs"] = parse_timeout_ms(timeout)
            app: Any = self.app
            created = await app.client.create_request(wt, prompt, config=config or None)
        except Exception as exc:  # noqa: BLE001 - show the API's message, keep the form
            error.update(Text(getattr(exc, "message", None) or str(exc), "red"))
            return
        self.dismiss(created)


class EditPromptModal(ModalScreen[str | None]):
    """The prompt of a request to replay, editable; ctrl+s replays with it, esc does nothing."""

    BINDINGS = [Binding("escape", "dismiss_none", "Cancel"), Binding("ctrl+s", "submit", "Replay")]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box", id="edit-box"):
            yield Static("Replay with this prompt (ctrl+s replays, esc cancels)", classes="panel-title")
            yield TextArea(self.prompt, id="edit-area")
            yield Static("", id="edit-error")

    def on_mount(self) -> None:
        self.set_class(self.app.size.height < 30 or self.app.size.width < 100, "-narrow")
        area = self.query_one("#edit-area", TextArea)
        area.move_cursor(area.document.end)  # ready to append to the prompt
        area.focus()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        text = self.query_one("#edit-area", TextArea).text
        if not text.strip():
            self.query_one("#edit-error", Static).update(Text("the prompt is empty", "red"))
            return
        self.dismiss(text)


class OutputScreen(Screen[None]):
    BINDINGS = [Binding("escape,o,q", "app.pop_screen", "Back")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="panel", id="output-view"):
            yield Static("Raw output (esc to go back)", classes="panel-title")
            yield Static(Text(self.text), id="output-json")
