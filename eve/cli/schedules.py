"""`eve schedule ...`: cron schedules that create requests (create, list, show, pause, resume, run, delete).

Cron expressions and time zones are checked here before anything is sent, so a typo
is a usage error (exit 2) that names the bad field, as the API's 400 would.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape

from eve.cli._client import JsonOpt, parse_timeout_ms, with_client
from eve.cli._common import die
from eve.cli.output import console, duration, first_line, parse_ts, print_json, styled_status, table
from eve.cli.requests import _read_context, _read_prompt
from eve.errors import ValidationError

if TYPE_CHECKING:
    from eve.client import EveClient

schedule_app = typer.Typer(
    help="Cron schedules: recurring requests, fired exactly once per tick by whichever worker "
         "gets there first.", no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="Schedule name (in your org) or id.")]


def _check_cron(cron: str | None, tz: str | None) -> None:
    """Usage errors (exit 2) for a bad expression or zone, before talking to the API."""
    from eve.schedules import parse_cron, parse_timezone

    try:
        if cron is not None:
            parse_cron(cron)
        if tz is not None:
            parse_timezone(tz)
    except ValidationError as exc:
        die(exc.message, 2)


def _call(ctx: typer.Context, fn: Any) -> Any:
    """with_client, but the API's 400 for a cron or zone is a usage error (exit 2) too."""
    from eve.client import ApiError

    try:
        return with_client(ctx, fn)
    except ApiError as exc:
        if exc.status == 400:
            die(exc.message, 2)
        raise


def _seconds(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_timeout_ms(text) // 1000
    except ValidationError:
        raise ValidationError(f"{flag} {text!r} is not a duration like 10m, 90s, 1h") from None


@schedule_app.command("create")
def schedule_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", "-n", help="Unique in your org: letters, digits, - _ .")],
    cron: Annotated[str, typer.Option("--cron", help="5 fields 'minute hour day month weekday' "
                                                     "(e.g. '0 3 * * *'), or @hourly, @daily, @weekly.")],
    worker_type: Annotated[str, typer.Option("--worker-type", "-t", help="general, code-review, ...")],
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="What the agent should do each time.")] = None,
    prompt_file: Annotated[str | None, typer.Option("--prompt-file", help="Read the prompt from a file, or - "
                                                                         "for stdin.")] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone the cron is read in (DST handled).")] = "UTC",
    context: Annotated[str | None, typer.Option(help="JSON object, or @file.json, for every request.")] = None,
    variant: Annotated[str | None, typer.Option(help="Claude Code variant (mclaude, zai, ...).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name passed to the variant.")] = None,
    timeout: Annotated[str | None, typer.Option(help="Each run gives up after this long: 30m, 2h.")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first (-1000..1000).")] = None,
    overlap: Annotated[str, typer.Option(help="skip: no new run while the previous one is still going; "
                                              "allow: run anyway.")] = "skip",
    max_delay: Annotated[str, typer.Option("--max-delay", help="After downtime, run a missed tick only if it "
                                                               "is at most this old (e.g. 10m, 1h).")] = "10m",
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused (resume later).")] = False,
    as_json: bool = JsonOpt,
) -> None:
    """Create a schedule, e.g. --name nightly --cron '0 3 * * *' --tz Europe/Berlin -t code-review -p "..."."""
    _check_cron(cron, tz)
    if overlap not in ("skip", "allow"):
        die(f"--overlap must be skip or allow, not {overlap!r}", 2)
    text = _read_prompt(prompt, prompt_file)
    ctx_obj = _read_context(context)
    config: dict[str, Any] = {k: v for k, v in (("variant", variant), ("model", model)) if v}
    if timeout:
        config["timeoutMs"] = parse_timeout_ms(timeout)
    delay = _seconds(max_delay, "--max-delay")
    s = _call(ctx, lambda c: c.create_schedule(name, cron, worker_type, text, timezone=tz, context=ctx_obj,
                                                config=config or None, priority=priority, overlap=overlap,
                                                max_delay_s=delay, enabled=not paused))
    if as_json:
        print_json(s)
        return
    out = console()
    out.print(f"created schedule [bold]{escape(s['name'])}[/] ({s['id']})")
    out.print(f"next: {_when(s.get('nextFireAt'), s['timezone'])}" if s["enabled"] else "paused")


def _when(value: str | None, tz: str) -> str:
    """'2026-11-26 03:00 CET (in 16h32m)' in the schedule's zone."""
    at = parse_ts(value)
    if at is None:
        return "-"
    try:
        local = at.astimezone(ZoneInfo(tz))
    except (KeyError, ValueError, OSError):
        local = at
    delta = (at - datetime.now(timezone.utc)).total_seconds()
    rel = f"in {duration(delta)}" if delta >= 0 else f"{duration(-delta)} ago"
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({rel})"


def last_result(s: dict[str, Any]) -> str:
    """The latest fire in one word or two: fired → the request's status/result."""
    last = s.get("lastFire")
    if not last:
        return "-"
    if last["outcome"] in ("skipped", "missed", "refused"):
        return f"[yellow]{last['outcome']}[/]"
    return styled_status(last.get("resultStatus") or last.get("requestStatus") or last["outcome"])


@schedule_app.command("list")
def schedule_list(ctx: typer.Context,
                  org: Annotated[str | None, typer.Option(help="Only this org (operators).")] = None,
                  as_json: bool = JsonOpt) -> None:
    """All schedules: cron, zone, next fire, last result, paused."""
    items = with_client(ctx, lambda c: c.list_schedules(org=org))
    if as_json:
        print_json(items)
        return
    out = console()
    if not items:
        out.print("no schedules; create one with: eve schedule create --name NAME --cron '0 3 * * *' -t general "
                  "-p PROMPT")
        return
    t = table("NAME", "CRON", "TZ", "TYPE", "NEXT FIRE", "LAST RESULT", "PAUSED")
    for s in items:
        t.add_row(escape(s["name"]), escape(s["cronExpression"]), s["timezone"], s["workerType"],
                  _when(s["nextFireAt"], s["timezone"]) if s["enabled"] else "-", last_result(s),
                  "[yellow]yes[/]" if not s["enabled"] else "no")
    out.print(t)


@schedule_app.command("show")
def schedule_show(ctx: typer.Context, schedule: RefArg, as_json: bool = JsonOpt) -> None:
    """One schedule: its request template, the next 5 fire times and its recent fires."""
    s = with_client(ctx, lambda c: c.get_schedule(schedule))
    if as_json:
        print_json(s)
        return
    out = console()
    rows = [("name", escape(s["name"])), ("id", s["id"]), ("cron", escape(s["cronExpression"])),
            ("timezone", s["timezone"]), ("state", "[yellow]paused[/]" if not s["enabled"] else "[green]active[/]"),
            ("worker type", s["workerType"]), ("overlap", s["overlap"]), ("max delay", duration(s["maxDelayS"])),
            ("last result", last_result(s)), ("prompt", escape(first_line(s["prompt"], 300)))]
    if s.get("context"):
        import json

        rows.append(("context", escape(json.dumps(s["context"]))))
    for key, value in rows:
        out.print(f"[bold]{key:>12}[/]  {value}")
    if s["nextFireTimes"]:
        out.print(f"[bold]{'next fires':>12}[/]  " + f"\n{'':>14}".join(_when(t, s["timezone"])
                                                                      for t in s["nextFireTimes"]))
    if s.get("fires"):
        out.print(f"[bold]{'recent':>12}[/]")
        t = table("TICK", "OUTCOME", "REQUEST", "STATUS")
        for f in s["fires"][:10]:
            outcome = f["outcome"] + (f" ({escape(f['detail'].split(':')[0])})" if f.get("detail") else "")
            t.add_row(_when(f["fireAt"], s["timezone"]), outcome, f.get("requestId") or "-",
                      styled_status(f.get("requestStatus")) if f.get("requestStatus") else "-")
        out.print(t)


def _toggle(ctx: typer.Context, schedule: str, enabled: bool, as_json: bool) -> None:
    s = with_client(ctx, lambda c: c.update_schedule(schedule, enabled=enabled))
    if as_json:
        print_json(s)
    elif enabled:
        console().print(f"resumed {escape(s['name'])}; next: {_when(s['nextFireAt'], s['timezone'])}")
    else:
        console().print(f"paused {escape(s['name'])}")


@schedule_app.command("pause")
def schedule_pause(ctx: typer.Context, schedule: RefArg, as_json: bool = JsonOpt) -> None:
    """Stop firing (ticks while paused are not made up later)."""
    _toggle(ctx, schedule, False, as_json)


@schedule_app.command("resume")
def schedule_resume(ctx: typer.Context, schedule: RefArg, as_json: bool = JsonOpt) -> None:
    """Fire again, from the next tick after now."""
    _toggle(ctx, schedule, True, as_json)


@schedule_app.command("run")
def schedule_run(ctx: typer.Context, schedule: RefArg, as_json: bool = JsonOpt) -> None:
    """Fire now (also when paused); prints the new request's id."""
    req = with_client(ctx, lambda c: c.run_schedule(schedule))
    if as_json:
        print_json(req)
        return
    out = console()
    out.print(f"created request [bold]{req['id']}[/] from schedule {escape(schedule)}")
    out.print(f"[bright_black]follow it: eve request logs {req['id']} --follow[/]")


@schedule_app.command("delete")
def schedule_delete(ctx: typer.Context, schedule: RefArg) -> None:
    """Delete a schedule; the requests it created stay."""

    async def go(c: EveClient) -> None:
        await c.delete_schedule(schedule)

    with_client(ctx, go)
    console().print(f"deleted schedule {escape(schedule)}")

