"""The top line: connection state (live / reconnecting / down), clock, API URL, then the last error.

One line, cut with an ellipsis at the terminal's width: the state comes first so it is never lost.
"""

from __future__ import annotations

from textual.widgets import Static


class StatusHeader(Static):
    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def refresh_text(self) -> None:
        app = self.app
        text = getattr(app, "header_text", None)
        if not callable(text):
            self.update("eve")
            return
        line = text()
        line.no_wrap = True
        line.overflow = "ellipsis"
        self.update(line)
