"""`eve status`, `eve queue`, `eve workers [logs ID]`, `eve tail`."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from eve.cli._client import JsonOpt, with_client
from eve.cli.output import age, clock, console, duration, event_line, print_json, table

workers_app = typer.Typer(help="Workers: list them, read their logs, drain one.", invoke_without_command=True)

if TYPE_CHECKING:
    from eve.client import EveClient


def status(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Platform health: API, database, workers alive/expected per type, queue depth."""
    st = with_client(ctx, lambda c: c.status())
    if as_json:
        print_json(st)
        return
    out = console()
    t = table("Component", "Status")
    t.add_row("API", "[green]OK[/]" if st["api"] == "ok" else f"[red]{st['api']}[/]")
    t.add_row("Database", "[green]OK[/]" if st["database"] == "ok" else f"[red]{st['database']}[/]")
    for w in st["workers"]:
        ok = w["alive"] >= w["expected"] and w["expected"] > 0
        color = "green" if ok else ("bright_black" if w["expected"] == 0 else "red")
        notes = []
        if w.get("unsandboxed"):
            notes.append(f"[red]sandbox: none on {w['unsandboxed']}[/]")
        if w.get("diskLow"):
            notes.append(f"[red]disk_low on {w['diskLow']}[/]")
        t.add_row(f"Workers ({w['workerType']})",
                  f"[{color}]{w['alive']}/{w['expected']}[/]" + ("  " + ", ".join(notes) if notes else ""))
    out.print(t)
    out.print("\nQueue Depth:")
    width = max((len(q["workerType"]) for q in st["queue"]), default=0) + 1
    for q in st["queue"]:
        oldest = f"  (oldest {duration(q['oldestPendingAgeS'])})" if q.get("oldestPendingAgeS") is not None else ""
        out.print(f"  {q['workerType'] + ':':<{width}} {q['pending']:>3} pending{oldest}")


def queue(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Queue depth per worker type, with the oldest pending request's age."""
    rows = with_client(ctx, lambda c: c.queue())
    if as_json:
        print_json(rows)
        return
    t = table("WORKER TYPE", "PENDING", "OLDEST", "RUNNING", "DONE/1H", "FAILED/1H", "CANCELLED/1H", "WORKERS")
    for q in rows:
        t.add_row(q["workerType"], str(q["pending"]), duration(q.get("oldestPendingAgeS")), str(q["running"]),
                  str(q["completedLastHour"]), str(q["failedLastHour"]), str(q.get("cancelledLastHour", "-")),
                  str(q.get("workersAlive", "-")))
    console().print(t)


STATE_STYLE = {"idle": "green", "busy": "cyan", "draining": "yellow", "stopped": "bright_black", "lost": "red"}


@workers_app.callback()
def workers(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """List workers: type, state, current request, slots, heartbeat age, sandbox mode (none in red) and
    the agents' network (filtered: only the allowlist; open: the host's network, in yellow) and what
    holds the agents' limits (cgroup2, cgroup1, rlimit; `-tmp` and the like: a limit not enforced, in
    yellow; rlimit or none in red). `--json` has every value and how each is held.

    The current request shows only when it is one of your orgs' (operators: all).
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = with_client(ctx, lambda c: c.workers())
    if as_json:
        print_json(rows)
        return
    if not rows:
        console().print("no workers registered (start one: eve worker run --type general, or eve up)")
        return
    from eve.executor.limits import short_text

    t = table("ID", "TYPE", "STATE", "REQUEST", "SLOTS", "HEARTBEAT", "SANDBOX", "NETWORK", "LIMITS", "VERSION")
    for w in rows:
        state = f"[{STATE_STYLE.get(w['state'], 'white')}]{w['state']}[/]"
        if w.get("diskLow"):
            state += " [red]disk_low[/]"
        box = w.get("sandbox") or "none"
        net = w.get("network") or "open"
        held, weak = short_text(w.get("limits"))
        held = f"[red]{held}[/]" if held.startswith(("rlimit", "none")) else f"[yellow]{held}[/]" if weak else held
        t.add_row(w["id"], w["workerType"], state, (w.get("currentRequestId") or "-")[:8],
                  f"{w['slotsBusy']}/{w['slots']}", f"{w['heartbeatAgeS']:.0f}s ago",
                  f"[red]{box}[/]" if box == "none" else box, f"[yellow]{net}[/]" if net == "open" else net,
                  held, w["version"])
    console().print(t)


@workers_app.command("drain")
def worker_drain(
    ctx: typer.Context,
    worker_id: Annotated[str, typer.Argument(help="Worker ID (see `eve workers`).")],
    as_json: bool = JsonOpt,
) -> None:
    """Ask a worker to stop claiming; within a heartbeat it drains like on SIGTERM and exits (operators)."""
    row = with_client(ctx, lambda c: c.drain_worker(worker_id))
    if as_json:
        print_json(row)
        return
    console().print(f"drain requested for {row['id']}: it stops claiming within a heartbeat, then exits "
                    "when its running requests are done (or its grace period ends)")


@workers_app.command("logs")
def worker_logs(
    ctx: typer.Context,
    worker_id: Annotated[str, typer.Argument(help="Worker ID (see `eve workers`).")],
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep polling for new lines.")] = False,
    as_json: bool = JsonOpt,
) -> None:
    """A worker's own log lines (start, stop, claims, database trouble). Operators only."""
    out = console()

    async def go(c: EveClient) -> list[dict[str, Any]]:
        rows = await c.worker_logs(worker_id)
        if not follow_:
            return rows
        last = 0
        while True:
            for r in rows:
                _print_log(out, r, as_json)
                last = r["id"]
            await asyncio.sleep(1.0)
            rows = await c.worker_logs(worker_id, after=last)

    rows = with_client(ctx, go)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        _print_log(out, r, False)


def _print_log(out: Any, row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()
        return
    color = {"warning": "yellow", "error": "red"}.get(row["level"], "white")
    out.print(f"[bright_black]\\[{clock(row['at'])}][/] [{color}]{escape(row['message'])}[/]")


def tail(
    ctx: typer.Context,
    worker_type: Annotated[str | None, typer.Option("--worker-type", "-t", help="Only this worker type.")] = None,
    org: Annotated[str | None, typer.Option(help="Only this org (operators).")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Live firehose of request events, one line each, until Ctrl+C; reconnects on drop."""
    out = console()
    err = console(stderr=True)

    from eve.client import ApiUnreachable

    async def go(c: EveClient) -> None:
        last: str | None = None
        delay = 0.5
        while True:
            try:
                async for ev in c.firehose(worker_type=worker_type, org=org, last_event_id=last,
                                           on_open=lambda: err.print("[bright_black]connected; Ctrl+C to stop[/]")):
                    if ev.event != "request_event" or not isinstance(ev.data, dict):
                        continue
                    last = ev.id or last
                    delay = 0.5
                    if as_json:
                        sys.stdout.write(json.dumps(ev.data) + "\n")
                        sys.stdout.flush()
                    else:
                        out.print(event_line(ev.data, with_request=True))
            except ApiUnreachable as exc:
                err.print(f"[yellow]{escape(exc.message)}; reconnecting in {delay:.0f}s[/]")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    try:
        with_client(ctx, go)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


__all__ = ["age", "queue", "status", "tail", "workers_app"]
