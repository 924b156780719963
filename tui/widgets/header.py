"""The top line: API URL, connection state (live / reconnecting / down + last error), clock, paused."""

from __future__ import annotations

from textual.widgets import Static


class StatusHeader(Static):
    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def refresh_text(self) -> None:
        app = self.app
        text = getattr(app, "header_text", None)
        self.update(text() if callable(text) else "eve")
