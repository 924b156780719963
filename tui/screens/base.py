"""What every console screen shares: typed access to the app and the mounted flag."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

if TYPE_CHECKING:
    from eve.tui.app import EveApp


class EveScreen(Screen[None]):
    # set at the end of on_mount: snapshots that arrive earlier are applied there
    _ready = False

    @property
    def eve(self) -> EveApp:
        return self.app  # type: ignore[return-value]
