"""Routes for human-in-the-loop questions: thin, each calls one eve.hitl function.

`POST /hitl` is for agents only (their request token names the asking request); the
reads and the answer are for people, members of the question's org (others get 404,
as if it did not exist). An agent can never answer a question, its own least of all.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from eve import hitl, queue
from eve.auth import Caller
from eve.daemons.api.errors import ERROR_RESPONSES
from eve.daemons.api.routes import _org_id
from eve.daemons.api.serialize import ts
from eve.db import as_user
from eve.errors import Forbidden

Json = dict[str, Any]


class AskIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    question: str
    options: list[str] = msgspec.field(default_factory=list)
    timeout_s: float | None = None


class AnswerIn(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    answer: str


def question_out(row: dict[str, Any]) -> Json:
    response = row.get("response") or {}
    return {
        "id": str(row["id"]), "requestId": str(row["request_id"]), "orgId": str(row["org_id"]),
        "orgSlug": row.get("org_slug"), "workerType": row.get("worker_type"),
        "requestStatus": row.get("request_status"), "requestPrompt": (row.get("request_prompt") or "")[:500],
        "question": row["question"], "options": row["options"] or [], "status": row["status"],
        "answer": response.get("answer"), "answeredVia": response.get("via"),
        "answeredBy": str(row["answered_by"]) if row["answered_by"] else None,
        "answeredByName": row["answered_by_name"], "askedAt": ts(row["asked_at"]),
        "expiresAt": ts(row["expires_at"]), "answeredAt": ts(row["answered_at"]), "closedAt": ts(row["closed_at"]),
    }


def _agent_request(caller: Caller) -> UUID | None:
    """The request an agent's token belongs to; None for a person's token."""
    return getattr(caller, "request_id", None)


def _people_only(caller: Caller) -> None:
    if _agent_request(caller) is not None:
        raise Forbidden("agents cannot read or answer questions; a person answers them "
                        "(eve hitl answer, eve ui, the API or Slack)")


@post("/hitl", status_code=201, tags=["hitl"], responses=ERROR_RESPONSES,
      summary="Ask a person a question (agents, with their request token); the request waits for the answer")
async def ask(data: AskIn, caller: Caller, state: State) -> Json:
    request_id = _agent_request(caller)
    if request_id is None:
        raise Forbidden("only an agent asks questions: run `eve ask` inside a request "
                        "(it authenticates with the request token in EVE_API_TOKEN)")
    async with as_user(state.pool, caller.user_id) as conn:
        row = await hitl.ask(conn, request_id=request_id, question=data.question, options=data.options,
                             timeout_s=data.timeout_s)
    return question_out(row)


@get("/hitl", tags=["hitl"], responses=ERROR_RESPONSES,
     summary="Questions of the caller's orgs (pending ones oldest first), with the total")
async def list_questions(
    caller: Caller, state: State,
    status: Annotated[str | None, Parameter(description="pending, answered, expired, cancelled; comma-separated")]
    = None,
    org: Annotated[str | None, Parameter(description="Organization slug")] = None,
    request_id: Annotated[str | None, Parameter(query="requestId", description="Only this request's")] = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
) -> Json:
    _people_only(caller)
    statuses = hitl.parse_statuses(status)
    rid = queue.parse_uuid(request_id) if request_id else None
    async with as_user(state.pool, caller.user_id) as conn:
        org_id = await _org_id(conn, org)
        rows, total = await hitl.list_questions(conn, statuses=statuses, org_id=org_id, request_id=rid, limit=limit)
    return {"items": [question_out(r) for r in rows], "total": total}


@get("/hitl/{question_id:str}", tags=["hitl"], responses=ERROR_RESPONSES, summary="One question")
async def get_question(question_id: str, caller: Caller, state: State) -> Json:
    _people_only(caller)
    async with as_user(state.pool, caller.user_id) as conn:
        return question_out(await hitl.get_question(conn, question_id))


@post("/hitl/{question_id:str}/answer", status_code=200, tags=["hitl"], responses=ERROR_RESPONSES,
      summary="Answer a question (400 lists the options; 409 says who answered first); the agent resumes")
async def answer(question_id: str, data: AnswerIn, caller: Caller, state: State) -> Response[Json]:
    _people_only(caller)
    try:
        async with as_user(state.pool, caller.user_id) as conn:
            row = await hitl.answer_question(conn, question_id, data.answer, user_id=caller.user_id)
    except hitl.OptionNotAllowed as exc:
        return Response({"error": exc.code, "message": exc.message, "options": exc.options}, status_code=400)
    return Response(question_out(row))


HANDLERS = [ask, list_questions, get_question, answer]
