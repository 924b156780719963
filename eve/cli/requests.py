"""`eve request ...`, `eve result ...`, `eve logs`, `eve replay`, `eve cancel`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from eve.cli._client import JsonOpt, parse_timeout_ms, with_client
from eve.cli.output import (
    age, console, duration, event_line, first_line, money, print_json, styled_status, table,
)
from eve.errors import EveError, ValidationError

request_app = typer.Typer(help="Create, list and inspect requests.", no_args_is_help=True)
result_app = typer.Typer(help="Results of finished requests.", no_args_is_help=True)

FINAL_OK = {"success"}

if TYPE_CHECKING:
    from eve.client import EveClient


# -- request list / get -------------------------------------------------------------------------

@request_app.command("list")
def request_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="pending, claimed, processing, completed, failed, cancelled")] = None,
    worker_type: Annotated[str | None, typer.Option("--worker-type", "-t", help="Only this worker type.")] = None,
    org: Annotated[str | None, typer.Option(help="Only this org (operators).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first.")] = 20,
    as_json: bool = JsonOpt,
) -> None:
    """List recent requests, newest first."""
    page = with_client(ctx, lambda c: c.list_requests(status=status, worker_type=worker_type, org=org, limit=limit))
    if as_json:
        print_json(page)
        return
    out = console()
    if not page["items"]:
        out.print("no requests")
        return
    t = table("ID", "STATUS", "TYPE", "AGE", "DURATION", "COST", "PROMPT")
    for r in page["items"]:
        res = r.get("result") or {}
        t.add_row(r["id"], styled_status(r["status"]), r["workerType"], age(r["createdAt"]),
                  duration((r["durationMs"] or 0) / 1000 if r["durationMs"] is not None else None),
                  money(res.get("costUsd")), escape(first_line(r["prompt"], 50)))
    out.print(t)
    if page.get("nextCursor"):
        out.print(f"[bright_black](more: --limit {limit * 2})[/]")


@request_app.command("get")
def request_get(ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="Request ID.")],
                as_json: bool = JsonOpt) -> None:
    """Show one request: status, timings, attempts, result summary."""
    r = with_client(ctx, lambda c: c.get_request(request_id))
    if as_json:
        print_json(r)
        return
    print_request(r)


def print_request(r: dict[str, Any]) -> None:
    out = console()
    res = r.get("result") or {}
    rows = [
        ("id", r["id"]), ("status", styled_status(r["status"])), ("worker type", r["workerType"]),
        ("created", f"{r['createdAt']} ({age(r['createdAt'])} ago)"),
        ("attempts", f"{r['attempts']}/{r['maxAttempts']}"), ("claimed by", r.get("claimedBy") or "-"),
        ("queued", duration(r["queuedMs"] / 1000 if r.get("queuedMs") is not None else None)),
        ("duration", duration(r["durationMs"] / 1000 if r.get("durationMs") is not None else None)),
        ("config", escape(json.dumps(r.get("config") or {}))),
    ]
    if r.get("replayOf"):
        rows.append(("replay of", r["replayOf"]))
    if r.get("parentId"):
        rows.append(("parent", f"{r['parentId']} (eve request tree {r['parentId']})"))
    if r.get("scheduleId"):
        rows.append(("schedule", f"{r['scheduleId']} (eve schedule show {r['scheduleId']})"))
    if res:
        rows += [("result", styled_status(res.get("status"))), ("tokens", str(res.get("tokensUsed") or "-")),
                 ("cost", money(res.get("costUsd")))]
        if res.get("errorCode"):
            rows.append(("error", f"[red]{escape(res['errorCode'])}[/]: {escape(str(res.get('error') or ''))}"))
        if res.get("summary"):
            rows.append(("summary", escape(first_line(res["summary"], 300))))
    for key, value in rows:
        out.print(f"[bold]{key:>12}[/]  {value}")
    out.print(f"[bold]{'prompt':>12}[/]  {escape(first_line(r['prompt'], 300))}")


def own_request_id() -> str:
    """The request this agent runs (its worker sets EVE_REQUEST_ID)."""
    rid = os.environ.get("EVE_REQUEST_ID")
    if not rid:
        raise ValidationError("EVE_REQUEST_ID is not set: --child and `eve wait` work only inside an agent run "
                              "by an eve worker; give a request ID instead")
    return rid


# -- request create ------------------------------------------------------------------------------

def _read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    if prompt is not None and prompt_file is not None:
        raise ValidationError("give either --prompt or --prompt-file, not both")
    if prompt_file == "-":
        return sys.stdin.read()
    if prompt_file is not None:
        try:
            return Path(prompt_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read --prompt-file {prompt_file}: {exc.strerror}") from None
    if prompt is None:
        raise ValidationError("a prompt is required: --prompt TEXT, --prompt-file FILE or --prompt-file - (stdin)")
    return prompt


def _read_context(context: str | None) -> dict[str, Any] | None:
    if context is None:
        return None
    text = context
    if context.startswith("@"):
        try:
            text = Path(context[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read context file {context[1:]}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"--context is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValidationError("--context must be a JSON object, e.g. '{\"repo\": \"acme/api\"}'")
    return value


@request_app.command("create")
def request_create(
    ctx: typer.Context,
    worker_type: Annotated[str, typer.Option("--worker-type", "-t", help="general, code-review, ...")],
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="What the agent should do.")] = None,
    prompt_file: Annotated[str | None, typer.Option("--prompt-file", help="Read the prompt from a file, or - for stdin.")] = None,
    context: Annotated[str | None, typer.Option(help="JSON object, or @file.json. Reaches the agent as EVE_CTX_*.")] = None,
    variant: Annotated[str | None, typer.Option(help="Claude Code variant (mclaude, zai, ...).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name passed to the variant.")] = None,
    timeout: Annotated[str | None, typer.Option(help="Give up after this long: 30m, 90s, 2h.")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first (-1000..1000); a child's at most its "
                                                      "parent's (default: the parent's, else 0).")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow progress live and print the result; "
                                                          "exit 1 unless it succeeds.")] = False,
    child: Annotated[bool, typer.Option("--child", help="Agents: a child of the request this agent runs "
                                                       "($EVE_REQUEST_ID).")] = False,
    parent: Annotated[str | None, typer.Option("--parent", help="A child of this request ID.")] = None,
    reply_to_parent: Annotated[bool, typer.Option(
        "--reply-to-parent", help="The parent waits for this child: `eve wait` parks the parent until every "
                                  "such child has a result, then it is resumed with their results.")] = False,
    idempotency_key: Annotated[str | None, typer.Option(
        "--idempotency-key", envvar="EVE_IDEMPOTENCY_KEY", show_envvar=False,
        help="Safe to run again: the same key (per org, for 24 h) returns the request it made the first "
             "time instead of creating another (a script's retry, a re-run cron line). Also retried by "
             "the client itself when the API cannot be reached.")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Submit a request to the queue (optionally --wait for its result).

    Agents orchestrating sub-tasks: `--child --reply-to-parent` for each, then `eve wait`.
    """
    text = _read_prompt(prompt, prompt_file)
    parent_id = own_request_id() if child else parent
    if child and parent:
        raise ValidationError("give either --child or --parent ID, not both")
    if reply_to_parent and parent_id is None:
        raise ValidationError("--reply-to-parent needs --child (agents) or --parent ID")
    ctx_obj = _read_context(context)
    config: dict[str, Any] = {}
    if variant:
        config["variant"] = variant
    if model:
        config["model"] = model
    if timeout:
        config["timeoutMs"] = parse_timeout_ms(timeout)

    async def go(c: EveClient) -> tuple[dict[str, Any], dict[str, Any] | None]:
        created = await c.create_request(worker_type, text, context=ctx_obj, config=config or None, priority=priority,
                                         parent_id=parent_id, reply_to_parent=reply_to_parent,
                                         idempotency_key=idempotency_key)
        if not wait:
            return created, None
        return created, await follow(c, created["id"], quiet=as_json)

    created, result = with_client(ctx, go)
    finish(created, result, as_json=as_json, waited=wait)


def finish(created: dict[str, Any], result: dict[str, Any] | None, *, as_json: bool, waited: bool) -> None:
    out = console()
    if not waited:
        if as_json:
            print_json(created)
        else:
            out.print(f"created request [bold]{created['id']}[/] ({created['workerType']}, {created['status']})")
            out.print(f"[bright_black]follow it: eve request logs {created['id']} --follow[/]")
        return
    assert result is not None
    if as_json:
        print_json(result)
    else:
        print_result(result)
    if result.get("status") not in FINAL_OK:
        raise typer.Exit(1)


async def follow(c: EveClient, request_id: str, *, quiet: bool = False) -> dict[str, Any]:
    """Live progress (spinner, status, tool calls) until the request ends; returns its result."""
    out = console(stderr=True)
    if quiet:
        async for _ in c.stream_events(request_id):
            pass
    else:
        with out.status(f"waiting for {request_id[:8]}…", spinner="dots") as spinner:
            async for ev in c.stream_events(request_id):
                if ev.event == "request_event" and isinstance(ev.data, dict):
                    out.print(event_line(ev.data))
                    spinner.update(f"{ev.data.get('kind')} · {request_id[:8]}")
    result = await c.get_result(request_id)
    if result is None:  # the stream ended without a result (connection cut): fall back to the request
        raise EveError(f"stream ended before request {request_id} finished; check: eve request get {request_id}")
    return result


def print_result(res: dict[str, Any]) -> None:
    out = console()
    out.print(f"[bold]result[/] {styled_status(res['status'])}  "
              f"duration {duration(res['durationMs'] / 1000 if res.get('durationMs') is not None else None)}  "
              f"tokens {res.get('tokensUsed') or '-'}  cost {money(res.get('costUsd'))}")
    if res.get("errorCode"):
        out.print(f"[red]{escape(res['errorCode'])}[/]: {escape(str(res.get('error') or ''))}")
        hint = HINTS.get(res["errorCode"])
        if hint:
            out.print(f"[bright_black]{escape(hint)}[/]")
    if res.get("summary"):
        out.print(escape(res["summary"]))


HINTS = {
    "variant_not_found": "install a variant on the worker's host, e.g. `npx cc-mirror quick --provider mirror "
                         "--name mclaude`, or set EVE_VARIANT_<NAME>; `eve doctor` checks this",
    "api_error": "the provider API refused the call: check the worker's provider key (ANTHROPIC_API_KEY, "
                 "Z_AI_API_KEY, ...) and the variant's configuration",
    "timeout": "raise the limit with --timeout, or split the task",
    "worker_lost": "the worker died mid-run too often; check `eve workers` and the worker's logs",
}


@request_app.command("logs")
def request_logs(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request ID.")],
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the request ends.")] = False,
    as_json: bool = JsonOpt,
) -> None:
    """The request's execution log (claimed, spawned, skills, tool calls, result)."""
    show_logs(ctx, request_id, follow_, as_json)


def show_logs(ctx: typer.Context, request_id: str, follow_: bool, as_json: bool) -> None:
    out = console()

    async def go(c: EveClient) -> list[dict[str, Any]]:
        if not follow_:
            return await c.list_events(request_id)
        events = []
        async for ev in c.stream_events(request_id):
            if ev.event == "request_event":
                events.append(ev.data)
                if as_json:
                    sys.stdout.write(json.dumps(ev.data) + "\n")
                    sys.stdout.flush()
                else:
                    out.print(event_line(ev.data))
        return events

    events = with_client(ctx, go)
    if follow_:
        return
    if as_json:
        print_json(events)
        return
    for ev in events:
        out.print(event_line(ev))
    if not events:
        out.print("no events yet")


# -- result ----------------------------------------------------------------------------------------

def _result_or_explain(c: EveClient, request_id: str) -> Any:
    async def go() -> dict[str, Any]:
        res = await c.get_result(request_id)
        if res is None:
            req = await c.get_request(request_id)
            raise EveError(f"request {request_id} has no result yet (status {req['status']}); "
                           f"wait with: eve request logs {request_id} --follow")
        return res
    return go()


@result_app.command("get")
def result_get(ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="Request ID.")],
               as_json: bool = JsonOpt) -> None:
    """Status, summary, cost and tokens of a finished request."""
    res = with_client(ctx, lambda c: _result_or_explain(c, request_id))
    if as_json:
        print_json(res)
    else:
        print_result(res)


@result_app.command("output")
def result_output(
    ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="Request ID.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole output object as JSON.")] = False,
) -> None:
    """Just the agent's answer (the summary text), for piping."""
    res = with_client(ctx, lambda c: _result_or_explain(c, request_id))
    if as_json:
        print_json(res.get("output"))
        return
    text = res.get("summary")
    if text is None and isinstance(res.get("output"), dict):
        text = res["output"].get("result")
    sys.stdout.write((text or "") + ("\n" if text and not text.endswith("\n") else ""))


# -- top-level shortcuts -------------------------------------------------------------------------------

def logs(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Option("--request-id", "-r", help="Request ID.")],
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the request ends.")] = False,
    as_json: bool = JsonOpt,
) -> None:
    """All logs of one request, in the seed's `[HH:MM:SS] message` format."""
    show_logs(ctx, request_id, follow_, as_json)


def replay(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request ID to run again.")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow the new request and print its result.")] = False,
    as_json: bool = JsonOpt,
) -> None:
    """Run a request again (same worker type, prompt, context, config) as a new request."""

    async def go(c: EveClient) -> tuple[dict[str, Any], dict[str, Any] | None]:
        new = await c.replay(request_id)
        return new, (await follow(c, new["id"], quiet=as_json) if wait else None)

    new, result = with_client(ctx, go)
    if not wait and not as_json:
        console().print(f"replayed {request_id} as [bold]{new['id']}[/]")
        return
    finish(new, result, as_json=as_json, waited=wait)


def cancel(ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="Request ID.")],
           as_json: bool = JsonOpt) -> None:
    """Cancel a request: at once if pending, else the worker stops the agent."""
    r = with_client(ctx, lambda c: c.cancel(request_id))
    if as_json:
        print_json(r)
    elif r["status"] == "cancelled":
        console().print(f"cancelled {request_id}")
    else:
        console().print(f"cancel requested for {request_id} ({r['status']}); the worker stops the agent")
