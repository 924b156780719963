"""Text for cells and lines, shared by the screens (colors by status, kind and state)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rich.text import Text

from eve.cli.output import KIND_STYLE, STATUS_STYLE, describe_event, duration, first_line, money

STATE_STYLE = {"idle": "green", "busy": "cyan", "draining": "yellow", "stopped": "bright_black", "lost": "red"}
BARS = "▁▂▃▄▅▆▇█"


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def clock(at: datetime | None, utc: bool = True, fmt: str = "%H:%M:%S") -> str:
    """A timestamp in UTC, or in the machine's local zone when the operator toggled `t`."""
    if at is None:
        return "--:--:--"
    return (at.astimezone(timezone.utc) if utc else at.astimezone()).strftime(fmt)


def age(value: str | None, now: datetime) -> str:
    at = ts(value)
    return duration((now - at).total_seconds()) if at else "-"


def status_text(status: str | None) -> Text:
    return Text(status or "-", style=STATUS_STYLE.get(status or "", "white"))


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, "white"))


def worker_state(worker: dict, *, short: bool = False) -> Text:
    """The state, with what an operator must see at once: disk below the floor, agents unconfined."""
    out = state_text(worker["state"])
    if worker.get("diskLow"):
        out.append(" disk" if short else " disk_low", style="bold red")
    if worker.get("sandbox") == "none" and worker["state"] != "stopped":
        out.append(" !box" if short else " no sandbox", style="bold red")
    return out


def sandbox_text(worker: dict) -> Text:
    """The sandbox mode; a contained worker whose agents still have the host's network says so."""
    box = worker.get("sandbox") or "-"
    out = Text(box, style="bold red" if box == "none" else "")
    if box not in ("none", "-") and worker.get("network") == "open":
        out.append(" open net", style="yellow")
    return out


def ms(value: int | None) -> str:
    return duration(value / 1000) if value is not None else "-"


def spark(values: list[float], top: float, width: int) -> str:
    """A one-line sparkline of the last `width` values on a shared scale 0..top (so rows compare)."""
    values = values[-width:]
    if top <= 0:
        return (BARS[0] * len(values)).rjust(width)
    return "".join(BARS[min(len(BARS) - 1, round(v / top * (len(BARS) - 1)))] for v in values).rjust(width)


def event_text(event: dict[str, Any], *, with_request: bool = False, utc: bool = True, limit: int = 2000) -> Text:
    """One event as a line; long texts are kept (up to `limit`) for the log widget to wrap."""
    kind = event.get("kind", "?")
    line = Text(clock(ts(event.get("at")), utc) + " ", style="bright_black")
    if with_request:
        line.append(f"{str(event.get('requestId', ''))[:8]} ", style="bright_black")
        line.append(f"{event.get('workerType', '')} ", style="blue")
    line.append(describe_event(kind, event.get("data") or {}, limit), style=KIND_STYLE.get(kind, "white"))
    return line


__all__ = ["age", "clock", "event_text", "first_line", "money", "ms", "spark", "state_text", "status_text", "ts"]
