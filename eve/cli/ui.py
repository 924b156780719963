"""`eve ui`: the Textual operator console (eve.tui, loaded lazily so `eve --help` stays fast)."""

from __future__ import annotations

from eve.cli._common import die


def ui() -> None:
    """Open the operator console (Textual dashboard) against the API."""
    die("eve ui is not built yet")
