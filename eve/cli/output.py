"""How the CLI prints: `--json` prints the API's JSON and nothing else; otherwise rich text.

Colors follow the usual conventions: off when stdout is not a terminal or NO_COLOR is
set. Event lines use the seed's format, `[10:30:05] Tool call: Read /src/auth/index.ts`.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

STATUS_STYLE = {"pending": "yellow", "claimed": "cyan", "processing": "cyan", "waiting": "magenta",
                "completed": "green", "success": "green", "failed": "red", "timeout": "red",
                "cancelled": "bright_black"}
KIND_STYLE = {"claimed": "cyan", "spawned": "cyan", "skill_loaded": "blue", "init": "blue", "tool_call": "yellow",
              "tool_result": "bright_black", "text": "white", "stderr": "magenta", "result": "green",
              "error": "red", "requeued": "yellow", "cancel_requested": "red", "cancelled": "red",
              "replayed": "cyan", "context_skipped": "magenta", "hitl_asked": "bold yellow",
              "hitl_answered": "green", "hitl_expired": "red", "hitl_cancelled": "bright_black",
              "egress_refused": "red", "limit_exceeded": "bold red", "resources": "bright_black"}


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    no_color = bool(os.environ.get("NO_COLOR")) or not stream.isatty()
    # not a terminal: no colors and no width limit (tables would otherwise cut ids at 80 columns)
    return Console(file=stream, highlight=False, no_color=no_color, soft_wrap=not stream.isatty(),
                   force_terminal=None if not no_color else False, width=None if stream.isatty() else 240)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def clock(value: str | None) -> str:
    at = parse_ts(value)
    return at.astimezone().strftime("%H:%M:%S") if at else "--:--:--"


def age(value: str | None) -> str:
    at = parse_ts(value)
    if at is None:
        return "-"
    return duration((datetime.now(timezone.utc) - at).total_seconds())


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600)}h"


def money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def styled_status(status: str | None) -> str:
    s = status or "-"
    return f"[{STATUS_STYLE.get(s, 'white')}]{s}[/]"


def first_line(text: Any, limit: int = 120) -> str:
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe_event(kind: str, data: dict[str, Any], limit: int = 120) -> str:
    """One human sentence per event, as in the seed's `eve logs` example (texts cut at `limit`)."""
    d = data or {}
    if kind == "claimed":
        return f"Claimed by {d.get('worker_id', '?')}" + (f" (attempt {d['attempt']})" if d.get("attempt", 1) > 1
                                                          else "")
    if kind == "spawned":
        return f"Spawning {d.get('variant', '?')} variant"
    if kind == "skill_loaded":
        return f"Loading skill: {d.get('skill')}"
    if kind == "init":
        return f"Agent started (model {d.get('model')})"
    if kind == "tool_call":
        return f"Tool call: {first_line(d.get('summary') or d.get('tool'), max(200, limit))}"
    if kind == "tool_result":
        prefix = "Tool error" if d.get("is_error") else "Tool result"
        return f"{prefix}: {first_line(d.get('content'), limit)}"
    if kind == "text":
        return f"Agent: {first_line(d.get('text'), limit)}"
    if kind == "stderr":
        return f"stderr: {first_line(d.get('line'), limit)}"
    if kind == "result":
        extra = [x for x in (f"{d['tokens_used']} tokens" if d.get("tokens_used") else "",
                             money(d.get("cost_usd")) if d.get("cost_usd") is not None else "") if x]
        return "Execution complete" + (f" ({', '.join(extra)})" if extra else "")
    if kind == "error":
        status = d.get("status", "failed")
        return f"Execution {status}: {d.get('error_code', 'error')}: {first_line(d.get('error'), max(300, limit))}"
    if kind == "requeued":
        return f"Requeued ({d.get('reason', 'retry')})"
    if kind == "cancel_requested":
        return "Cancel requested"
    if kind == "cancelled":
        return "Cancelled"
    if kind == "replayed":
        return f"Replayed as {d.get('new_request_id')}"
    if kind == "context_skipped":
        return f"Context key skipped: {d.get('key')} ({d.get('reason')})"
    if kind == "egress_refused":
        return (f"Network refused: {d.get('target')} is not on the agents' allowlist"
                + (" (later refusals are not logged)" if d.get("last") else ""))
    if kind == "limit_exceeded":
        value = d.get("value")
        shown = f"{value:g} {d.get('unit', '')}".strip() if isinstance(value, (int, float)) else str(value)
        seen = [f"{k.replace('_', ' ')} {v}" for k, v in d.items() if k in ("oom_kills", "memory_peak_mb", "idle_s")]
        return (f"Limit exceeded: {d.get('limit')} ({shown}, {d.get('mechanism', '?')}); agent stopped: "
                f"{d.get('error_code')}" + (f" [{', '.join(seen)}]" if seen else ""))
    if kind == "resources":
        parts = [f"memory peak {d['memory_peak_mb']} MiB" if "memory_peak_mb" in d else "",
                 f"processes peak {d['pids_peak']}" if "pids_peak" in d else ""]
        return "Resources used: " + (", ".join(p for p in parts if p) or "not measured")
    if kind == "hitl_asked":
        opts = d.get("options") or []
        return f"Asked a person: {first_line(d.get('question'), limit)}" + (f" ({' / '.join(opts)})" if opts else "")
    if kind == "hitl_answered":
        return f"Answered by {d.get('answered_by')}: {first_line(d.get('answer'), limit)}"
    if kind == "hitl_expired":
        return f"Question expired unanswered ({d.get('expires_at')})"
    if kind == "hitl_cancelled":
        return f"Question cancelled ({d.get('reason')})"
    return f"{kind}: {first_line(json.dumps(d))}"


def event_line(event: dict[str, Any], *, with_request: bool = False) -> str:
    kind = event.get("kind", "?")
    text = escape(describe_event(kind, event.get("data") or {}))
    who = ""
    if with_request:
        who = f"[bright_black]{str(event.get('requestId', ''))[:8]}[/] [blue]{event.get('workerType', '')}[/] "
    return f"[bright_black]\\[{clock(event.get('at'))}][/] {who}[{KIND_STYLE.get(kind, 'white')}]{text}[/]"


def table(*columns: str) -> Table:
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for c in columns:
        t.add_column(c, no_wrap=c in ("ID", "STATUS", "STATE"), overflow="ellipsis" if c == "PROMPT" else "fold")
    return t
