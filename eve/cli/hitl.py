"""`eve ask` (agents) and `eve hitl list|show|answer` (people): human in the loop.

`eve ask` runs inside a request: the worker gives the agent EVE_API_URL and its request
token EVE_API_TOKEN. It records the question and tells the agent to end its turn; the
request then waits without a worker slot and resumes in the same session with the
answer, or with "No answer by <time>" when the question expires.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from eve.cli._client import JsonOpt, api_url_flag, parse_timeout_ms, with_client
from eve.cli._common import die
from eve.cli.output import age, console, first_line, print_json, styled_status, table
from eve.errors import ValidationError

if TYPE_CHECKING:
    from eve.client import EveClient

hitl_app = typer.Typer(help="Questions agents ask people (human in the loop): list, show, answer.",
                       no_args_is_help=True)

QUESTION_STYLE = {"pending": "yellow", "answered": "green", "expired": "red", "cancelled": "bright_black"}
END_TURN = ("End your turn now: stop working and run no more commands. This request waits for the answer "
            "without holding a worker, and you will be resumed in this same session with it.")


def _status(s: str) -> str:
    return f"[{QUESTION_STYLE.get(s, 'white')}]{s}[/]"


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question, e.g. \"Deploy v2 to production?\".")],
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="A choice the person picks; repeat it (--option yes --option no). "
                               "Without options the answer is free text.")] = None,
    timeout: Annotated[str | None, typer.Option(
        help="Stop waiting after this long (90s, 30m, 2h; default 24h); you are then resumed with "
             "'No answer by <time>' and decide yourself.")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Ask a person a question from inside a request (agents only), then end your turn."""
    from eve.client import EveClient
    from eve.config import resolve

    token = os.environ.get("EVE_API_TOKEN", "").strip()
    if not token:
        die("eve ask runs inside a request: EVE_API_TOKEN (the request token the worker gives the agent) "
            "is not set", 2)
    try:
        timeout_s = parse_timeout_ms(timeout) / 1000 if timeout else None
    except ValidationError as exc:
        die(exc.message, 2)
    url = resolve(api_url_flag(ctx)).api_url

    async def go() -> dict[str, Any]:
        async with EveClient(url, token=token) as c:
            return await c.ask(question, options=list(option or []), timeout_s=timeout_s)

    q = asyncio.run(go())
    if as_json:
        print_json(q)
        return
    choices = f" (answer one of: {', '.join(q['options'])})" if q["options"] else " (free-text answer)"
    out = console()
    out.print(f"Question {q['id']} asked{escape(choices)}; it expires at {q['expiresAt']}.")
    out.print(END_TURN)


async def _resolve_id(c: EveClient, ref: str) -> str:
    """A full id, or the start of one (the 8 characters `eve hitl list` shows)."""
    ref = ref.strip().lower()
    if len(ref) == 36:
        return ref
    if len(ref) < 4:
        raise ValidationError("give at least 4 characters of the question id")
    page = await c.list_questions(limit=500)
    ids = [i["id"] for i in page["items"] if i["id"].startswith(ref)]
    if len(ids) != 1:
        raise ValidationError(f"no question id starts with {ref}" if not ids else f"{ref} is ambiguous; type more")
    return ids[0]


@hitl_app.command("list")
def hitl_list(
    ctx: typer.Context,
    status: Annotated[str, typer.Option(help="pending, answered, expired, cancelled (comma-separated), "
                                             "or all.")] = "pending",
    org: Annotated[str | None, typer.Option(help="Only this org (slug).")] = None,
    request: Annotated[str | None, typer.Option("--request", help="Only this request's questions.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-500).", min=1, max=500)] = 100,
    as_json: bool = JsonOpt,
) -> None:
    """Questions of your orgs; by default the pending ones, the longest-waiting first."""
    page = with_client(ctx, lambda c: c.list_questions(status=None if status == "all" else status, org=org,
                                                       request_id=request, limit=limit))
    if as_json:
        print_json(page)
        return
    out = console()
    if not page["items"]:
        out.print("no pending questions" if status == "pending" else "no questions")
        return
    t = table("ID", "STATUS", "ASKED", "REQUEST", "ORG", "QUESTION", "OPTIONS")
    for q in page["items"]:
        t.add_row(q["id"][:8], _status(q["status"]), age(q["askedAt"]) + " ago", q["requestId"][:8],
                  escape(q.get("orgSlug") or ""), escape(first_line(q["question"], 80)),
                  escape(" / ".join(q["options"])) if q["options"] else "[bright_black](free text)[/]")
    out.print(t)
    if page["total"] > len(page["items"]):
        out.print(f"[bright_black]{len(page['items'])} of {page['total']}[/]")


@hitl_app.command("show")
def hitl_show(ctx: typer.Context,
              question_id: Annotated[str, typer.Argument(help="Question id, or its first characters.")],
              as_json: bool = JsonOpt) -> None:
    """One question: who asked (the request), the options, and the answer or why it closed."""

    async def go(c: EveClient) -> dict[str, Any]:
        return await c.get_question(await _resolve_id(c, question_id))

    q = with_client(ctx, go)
    if as_json:
        print_json(q)
        return
    rows = [("id", q["id"]), ("status", _status(q["status"])), ("request", f"{q['requestId']} "
                                                                           f"({styled_status(q['requestStatus'])})"),
            ("org", escape(q.get("orgSlug") or "")), ("asked", f"{q['askedAt']} ({age(q['askedAt'])} ago)"),
            ("expires", q["expiresAt"] or "-"),
            ("options", escape(" / ".join(q["options"])) if q["options"] else "(free text)")]
    if q["status"] == "answered":
        rows += [("answer", escape(q["answer"] or "")),
                 ("answered by", f"{escape(q['answeredByName'] or '')} at {q['answeredAt']} via {q['answeredVia']}")]
    out = console()
    for k, v in rows:
        out.print(f"[bold]{k:<12}[/] {v}")
    out.print()
    out.print(escape(q["question"]))
    if q["status"] == "pending":
        out.print(f"\n[bright_black]answer with: eve hitl answer {q['id'][:8]} ANSWER[/]")


@hitl_app.command("answer")
def hitl_answer(ctx: typer.Context,
                question_id: Annotated[str, typer.Argument(help="Question id, or its first characters.")],
                answer: Annotated[str, typer.Argument(help="One of the options, or free text when it has none.")],
                as_json: bool = JsonOpt) -> None:
    """Answer a pending question; its request resumes with the answer."""
    from eve.client import ApiError

    async def go(c: EveClient) -> dict[str, Any]:
        return await c.answer_question(await _resolve_id(c, question_id), answer)

    try:
        q = with_client(ctx, go)
    except ApiError as exc:
        if exc.status == 400:
            die(exc.message, 2)
        raise
    if as_json:
        print_json(q)
        return
    console().print(f"answered {q['id'][:8]}: {escape(q['answer'] or '')} — request {q['requestId'][:8]} resumes")
