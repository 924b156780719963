"""Text for cells and lines, shared by the screens (colors by status, kind and state)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text

from eve.cli.output import KIND_STYLE, STATUS_STYLE, describe_event, duration, first_line, money

STATE_STYLE = {"idle": "green", "busy": "cyan", "draining": "yellow", "stopped": "bright_black", "lost": "red"}


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def age(value: str | None, now: datetime) -> str:
    at = ts(value)
    return duration((now - at).total_seconds()) if at else "-"


def status_text(status: str | None) -> Text:
    return Text(status or "-", style=STATUS_STYLE.get(status or "", "white"))


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, "white"))


def ms(value: int | None) -> str:
    return duration(value / 1000) if value is not None else "-"


def event_text(event: dict[str, Any], *, with_request: bool = False) -> Text:
    at = ts(event.get("at"))
    kind = event.get("kind", "?")
    line = Text(f"{at:%H:%M:%S} " if at else "--:--:-- ", style="bright_black")
    if with_request:
        line.append(f"{str(event.get('requestId', ''))[:8]} ", style="bright_black")
        line.append(f"{event.get('workerType', '')} ", style="blue")
    line.append(describe_event(kind, event.get("data") or {}), style=KIND_STYLE.get(kind, "white"))
    return line


__all__ = ["age", "event_text", "first_line", "money", "ms", "state_text", "status_text", "ts"]
