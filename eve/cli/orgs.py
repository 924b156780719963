"""`eve org ...`: your organization's usage and limits, the audit log; operators set limits."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from eve.cli._client import JsonOpt, with_client
from eve.cli._common import die
from eve.cli._orgapi import OrgOpt, call, seg
from eve.cli.output import age, console, print_json, table

app = typer.Typer(help="Your organization: usage, limits and this month's spend against its budget; the "
                       "audit log; operators set limits.", no_args_is_help=True)


def _lim(v: Any, money: bool = False) -> str:
    if v is None:
        return "no limit"
    return f"${v:,.2f}" if money else str(v)


@app.command("show")
def org_show(ctx: typer.Context, org: OrgOpt = None, as_json: bool = JsonOpt) -> None:
    """Pending and running requests, this month's spend against the budget, and the limits."""
    o = with_client(ctx, lambda c: call(c, "GET", "/orgs/current", org=org))
    if as_json:
        print_json(o)
        return
    out = console()
    out.print(f"[bold]{escape(o['name'])}[/] ({o['slug']})")
    budget = o.get("monthlyBudgetUsd")
    spend = f"${o['monthSpendUsd']:,.2f}" + (f" of ${budget:,.2f} ({o['budgetUsedFraction']:.0%})" if budget else "")
    out.print(f"  spend this month  {spend}")
    out.print(f"  pending / running {o['pending']} / {o['running']}")
    by_type = ", ".join(f"{k}={v}" for k, v in (o.get("maxRunningByType") or {}).items())
    out.print(f"  max running       {_lim(o.get('maxRunning'))} per worker type" + (f" ({by_type})" if by_type else ""))
    out.print(f"  max pending       {_lim(o.get('maxPending'))}")
    out.print(f"  per API key       {_lim(o.get('ratePerMinute'))} requests/minute")
    out.print(f"  monthly budget    {_lim(budget, money=True)}")
    out.print(f"  platform keys     {'allowed' if o.get('platformKeys', True) else 'not given to agents'}")


@app.command("list")
def org_list(ctx: typer.Context, as_json: bool = JsonOpt) -> None:
    """Every org you see (operators: all) with pending, running and this month's spend."""
    rows = with_client(ctx, lambda c: call(c, "GET", "/orgs"))
    if as_json:
        print_json(rows)
        return
    t = table("ORG", "PENDING", "RUNNING", "SPEND (MONTH)", "BUDGET")
    for o in rows:
        t.add_row(o["slug"], str(o["pending"]), str(o["running"]), f"${o['monthSpendUsd']:,.2f}",
                  _lim(o.get("monthlyBudgetUsd"), money=True))
    console().print(t)


def _by_type(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        wt, _, n = item.partition("=")
        if not wt or not n.isdigit():
            die(f"--max-running-type {item!r}: use TYPE=N, e.g. general=5", 2)
        out[wt] = int(n)
    return out


@app.command("limits")
def org_limits(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The organization's slug.")],
    max_running: Annotated[int | None, typer.Option(help="Requests in flight per worker type.", min=0)] = None,
    max_running_type: Annotated[list[str] | None, typer.Option(
        "--max-running-type", help="Override for one worker type: TYPE=N (repeatable).")] = None,
    max_pending: Annotated[int | None, typer.Option(help="Pending requests (beyond: 429).", min=0)] = None,
    rate: Annotated[int | None, typer.Option("--rate", help="Requests per minute per API key (429).", min=0)] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="Monthly budget in USD (402 when spent).",
                                                 min=0)] = None,
    platform_keys: Annotated[bool | None, typer.Option(
        "--platform-keys/--no-platform-keys", help="Whether the platform's provider keys and GH_TOKEN reach the "
                                                   "org's agents (default: yes).")] = None,
    agent_memory_mb: Annotated[int | None, typer.Option(
        help="Per-agent memory (MiB) for this org's agents; narrows the workers', never widens.", min=1)] = None,
    agent_pids: Annotated[int | None, typer.Option(help="Per-agent processes.", min=1)] = None,
    agent_disk_mb: Annotated[int | None, typer.Option(help="Per-agent workspace disk (MiB).", min=1)] = None,
    agent_max_minutes: Annotated[float | None, typer.Option(help="Per-agent wall time (min).", min=0.01)] = None,
    agent_idle_minutes: Annotated[float | None, typer.Option(help="Per-agent silence (min).", min=0.01)] = None,
    clear: Annotated[list[str] | None, typer.Option(
        "--clear", help="Remove a limit: max-running, max-pending, rate, budget, agent (all agent limits) "
                        "(repeatable).")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Set an org's limits (operators only). Options not given keep their value."""
    names = {"max-running": "maxRunning", "max-pending": "maxPending", "rate": "ratePerMinute",
             "budget": "monthlyBudgetUsd", "agent": "agentLimits"}
    body: dict[str, Any] = {}
    for c in clear or []:
        if c not in names:
            die(f"--clear {c!r}: use one of {', '.join(names)}", 2)
        body[names[c]] = None
    for key, value in (("maxRunning", max_running), ("maxPending", max_pending), ("ratePerMinute", rate),
                       ("monthlyBudgetUsd", budget), ("platformKeys", platform_keys)):
        if value is not None:
            body[key] = value
    if max_running_type:
        body["maxRunningByType"] = _by_type(max_running_type)
    agent = {k: v for k, v in (("memory_mb", agent_memory_mb), ("pids", agent_pids), ("disk_mb", agent_disk_mb),
                               ("max_minutes", agent_max_minutes), ("idle_minutes", agent_idle_minutes))
             if v is not None}
    if agent:  # replaces the org's agent limits as a whole
        body["agentLimits"] = agent
    if not body:
        die("give at least one limit to set or --clear", 2)
    o = with_client(ctx, lambda c: call(c, "PUT", f"/orgs/{seg(slug)}/limits", json=body))
    if as_json:
        print_json(o)
    else:
        typer.echo(f"limits of {o['slug']} updated")


@app.command("audit")
def org_audit(
    ctx: typer.Context,
    org: OrgOpt = None,
    limit: Annotated[int, typer.Option(help="How many entries, newest first.", min=1, max=500)] = 50,
    as_json: bool = JsonOpt,
) -> None:
    """Who changed what and when: keys, members, secrets, limits (owners and admins)."""
    rows = with_client(ctx, lambda c: call(c, "GET", "/audit", org=org, params={"limit": limit}))
    if as_json:
        print_json(rows)
        return
    t = table("WHEN", "WHO", "ACTION", "TARGET")
    for a in rows:
        t.add_row(age(a["at"]), escape(a.get("actorEmail") or "-"), a["action"], escape(a.get("target") or ""))
    console().print(t)
