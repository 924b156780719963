"""Installations, Slack user → eve user, and requests created from Slack.

`SlackCore` is what the Bolt listeners call. It works on an eve_api pool (the API's own,
or `eve slack run`'s API DSN in Socket Mode): installations are read through the definer
function of migration 0012, users are resolved by it, and requests are created under the
resolved user's identity with `as_user`, so row-level security applies as for any API call.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool
from slack_sdk.errors import SlackApiError

from eve import limits, queue
from eve.db import as_api, as_user
from eve.errors import Conflict, EveError, NotFound, ValidationError
from eve.models import Request
from eve.queries import Q
from eve.settings import QueueSettings
from eve.slack import secretbox
from eve.worker_types import WorkerTypeCache

UNLINKED = ("I don't know who you are in eve yet: ask an operator to link you "
            "(`eve admin slack link --team {team} --slack-user {user} --email YOU@EXAMPLE.COM`), "
            "or use the email of your eve account in Slack and verify it.")
_TYPE_PREFIX = re.compile(r"^([a-z0-9][a-z0-9-]{0,62}):(?:\s+(.*)|)$", re.DOTALL)
CACHE_S = 10.0


@dataclass(frozen=True)
class Installation:
    id: UUID
    org_id: UUID
    team_id: str
    default_type: str
    bot_token: str = field(repr=False)
    signing_secret: str = field(repr=False)
    app_token: str | None = field(default=None, repr=False)


def decrypt_rows(rows: list[dict[str, Any]], key: bytes) -> list[Installation]:
    out = []
    for r in rows:
        aad = r["team_id"]
        out.append(Installation(
            id=r["id"], org_id=r["org_id"], team_id=r["team_id"], default_type=r["default_type"],
            bot_token=secretbox.unseal(key, r["bot_token"], aad=aad),
            signing_secret=secretbox.unseal(key, r["signing_secret"], aad=aad),
            app_token=secretbox.unseal(key, r["app_token"], aad=aad) if r.get("app_token") else None))
    return out


def parse_command(text: str, default_type: str, known_types: set[str] | None = None) -> tuple[str, str]:
    """`/eve [type:]PROMPT` → (worker type, prompt). A prefix that is not a known worker type
    ("Summary: …", "http://…") is part of the prompt."""
    text = (text or "").strip()
    m = _TYPE_PREFIX.match(text)
    if m and (known_types is None or m.group(1) in known_types):
        wtype, prompt = m.group(1), (m.group(2) or "").strip()
    else:
        wtype, prompt = default_type, text
    if not prompt:
        raise ValidationError("usage: /eve [type:]PROMPT, e.g. `/eve review the open PR` or "
                              "`/eve code-review: look at #42`")
    return wtype, prompt


def short(request_id: UUID | str) -> str:
    return str(request_id)[:8]


class SlackCore:
    """What the listeners need, over an eve_api pool."""

    def __init__(self, pool: AsyncConnectionPool, key: bytes, *, settings: QueueSettings | None = None,
                 worker_types: WorkerTypeCache | None = None, socket_mode: bool = False) -> None:
        self.pool = pool
        self.key = key
        self.settings = settings or QueueSettings()
        self.worker_types = worker_types
        self.socket_mode = socket_mode
        self._cache: dict[str, Installation] = {}
        self._loaded_at = 0.0

    async def installations(self, *, fresh: bool = False) -> dict[str, Installation]:
        """By team id; read again after CACHE_S, or when asked (an unknown team)."""
        if fresh or time.monotonic() - self._loaded_at > CACHE_S:
            async with as_api(self.pool) as conn:
                rows = await (await conn.execute(Q.slack_installations_api)).fetchall()
            self._cache = {i.team_id: i for i in decrypt_rows(rows, self.key)}
            self._loaded_at = time.monotonic()
        return self._cache

    async def installation(self, team_id: str | None) -> Installation | None:
        found = (await self.installations()).get(team_id or "")
        if found is None:
            found = (await self.installations(fresh=True)).get(team_id or "")
        return found

    async def known_types(self) -> set[str]:
        async with as_api(self.pool) as conn:
            return {wt.id for wt in await queue.list_worker_types(conn)}

    async def resolve_user(self, inst: Installation, slack_user: str, client: Any) -> UUID | None:
        """The eve user `slack_user` acts as: an explicit link, else a member of the
        installation's org with the email Slack says is verified (users.info). None: nobody."""
        email, failed = None, False
        try:
            info = await client.users_info(user=slack_user)
            user = info.get("user") or {}
            if user.get("is_email_confirmed") and not user.get("deleted") and not user.get("is_bot"):
                email = (user.get("profile") or {}).get("email")
        except SlackApiError as exc:
            failed = exc.response is None or exc.response.get("error") != "user_not_found"
        except Exception:  # noqa: BLE001 - Slack unreachable or slow: links still work, email matching cannot
            failed = True
        async with as_api(self.pool) as conn:
            row = await (await conn.execute(Q.slack_resolve_user, {
                "installation_id": inst.id, "slack_user_id": slack_user, "email": email})).fetchone()
        if row is None or row["user_id"] is None:
            if failed:  # not "unknown": Slack could not tell us who it is
                raise EveError("Slack did not say who you are in time (users.info); try again in a minute",
                               code="slack_unavailable")
            return None
        return row["user_id"]

    async def create_request(self, inst: Installation, user_id: UUID, worker_type: str, prompt: str, *,
                             channel: str, slack_user: str | None, inbound_key: str | None,
                             replay_of: UUID | None = None,
                             context: dict[str, Any] | None = None,
                             config: dict[str, Any] | None = None,
                             thread_ts: str | None = None, continues: UUID | None = None) -> Request | None:
        """The request and its outbox row in one transaction, as `user_id`; None when this
        inbound delivery (`inbound_key`) was already handled (a retry). `thread_ts`: post into
        that existing thread; `continues`: resume that request's session (migration 0013)."""
        reply_to = {"type": "slack", "team": inst.team_id, "channel": channel, "thread_ts": thread_ts}
        try:
            async with as_user(self.pool, user_id) as conn:
                # the org's pending cap and budget hold for Slack too ("Not queued: ..." tells why)
                await limits.admit(conn, org_id=inst.org_id, key_id=None)
                req = await queue.enqueue(conn, org_id=inst.org_id, user_id=user_id, worker_type=worker_type,
                                          prompt=prompt, context=context, config=config, replay_of=replay_of,
                                          reply_to=reply_to, settings=self.settings, worker_types=self.worker_types)
                row = await (await conn.execute(Q.slack_thread_insert, {
                    "request_id": req.id, "installation_id": inst.id, "org_id": inst.org_id,
                    "channel": channel, "slack_user": slack_user, "inbound_key": inbound_key,
                    "root_ts": thread_ts})).fetchone()
                if row is None:
                    raise _Duplicate()
                if continues is not None:
                    await conn.execute(Q.continuation_insert, {"request_id": req.id, "org_id": inst.org_id,
                                                               "continues": continues})
                    await queue.append_events(conn, continues, inst.org_id,
                                              [("continued", {"new_request_id": str(req.id)})])
                if replay_of is not None:  # as POST /requests/{id}/replay records it
                    await queue.append_events(conn, replay_of, inst.org_id,
                                              [("replayed", {"new_request_id": str(req.id)})])
        except _Duplicate:
            return None
        return req

    async def replay(self, inst: Installation, user_id: UUID, request_id: str, *, channel: str,
                     slack_user: str, inbound_key: str | None) -> Request | None:
        """Replay a request the clicking user can see (RLS), into a new thread of `channel`."""
        async with as_user(self.pool, user_id) as conn:
            original = await queue.get_request(conn, request_id)
        return await self.create_request(inst, user_id, original.worker_type, original.prompt, channel=channel,
                                         slack_user=slack_user, inbound_key=inbound_key, replay_of=original.id,
                                         context=original.context, config=original.config)

    async def continue_thread(self, inst: Installation, user_id: UUID, prompt: str, *, channel: str,
                              thread_ts: str, slack_user: str, inbound_key: str | None) -> Request | None:
        """A mention in a thread eve owns: a new request, as the mentioning user, that resumes
        the thread's latest request's session and reports into the same thread. Raises
        NotFound when the thread is not eve's or its request is not visible to the user."""
        if not prompt.strip():
            raise ValidationError("say what to do next after the mention, e.g. `@eve now add tests`")
        async with as_user(self.pool, user_id) as conn:
            # a redelivery is known before anything is judged: the thread's latest request is
            # by now the one this very event created (the insert's conflict stays the real guard)
            if inbound_key and await (await conn.execute(Q.slack_inbound_seen, {"key": inbound_key})).fetchone():
                return None
            row = await (await conn.execute(Q.slack_thread_last_request, {
                "installation_id": inst.id, "channel": channel, "thread_ts": thread_ts})).fetchone()
            if row is None:
                raise NotFound("this thread is not one eve started (or you cannot see its request)")
            previous = await queue.get_request(conn, row["request_id"])
        if not previous.finished:  # its session is stored when it ends: continuing now would start afresh
            raise Conflict(f"eve is still working on #{short(previous.id)} in this thread ({previous.status}); "
                           "mention it again once it has answered")
        return await self.create_request(inst, user_id, previous.worker_type, prompt.strip(), channel=channel,
                                         slack_user=slack_user, inbound_key=inbound_key, config=previous.config,
                                         thread_ts=thread_ts, continues=previous.id)

    async def answer(self, user_id: UUID, value: str) -> dict[str, Any]:
        """A question button: `value` is "QUESTION_ID:OPTION_INDEX". Answers through the same
        function as POST /hitl/{id}/answer, as the clicking user (RLS, 409 on a second answer)."""
        from eve import hitl

        qid, _, index = value.partition(":")
        async with as_user(self.pool, user_id) as conn:
            question = await hitl.get_question(conn, qid)
            options = list(question["options"] or [])
            if not index.isdigit() or int(index) >= len(options):
                raise ValidationError("that button is not one of the question's options")
            return await hitl.answer_question(conn, qid, options[int(index)], user_id=user_id, via="slack")

    async def question(self, user_id: UUID, qid: str) -> dict[str, Any]:
        """A question as the clicking user sees it (404 for another org's, under RLS)."""
        from eve import hitl

        async with as_user(self.pool, user_id) as conn:
            return await hitl.get_question(conn, qid)

    async def answer_text(self, user_id: UUID, qid: str, text: str) -> dict[str, Any]:
        """A free-text answer from the modal, through the same function as the API."""
        from eve import hitl

        async with as_user(self.pool, user_id) as conn:
            return await hitl.answer_question(conn, qid, text, user_id=user_id, via="slack")

    async def result(self, user_id: UUID, request_id: str) -> Any:
        async with as_user(self.pool, user_id) as conn:
            return await queue.get_result(conn, request_id)


class _Duplicate(Exception):
    """Raised inside the transaction to roll it back: the request is not created twice."""


def user_message(exc: Exception) -> str:
    """What a Slack user reads about a failure: EveErrors say what to do; the rest is generic."""
    if isinstance(exc, EveError):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, psycopg.Error):
        return "the database is not answering; try again in a minute"
    return "something went wrong; the operator can find it in the logs"
