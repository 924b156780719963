"""The Bolt for Python listeners: `/eve`, mentions in eve's threads, Replay, Show output, HITL answers.

One AsyncApp serves both transports: the API hands it signature-checked HTTP requests
(daemons/api/slack.py), `eve slack run` hands it Socket Mode envelopes. Listeners ack
first (Slack wants an answer within 3 s), then call SlackCore; nothing here posts to a
thread — the delivery loop does that from the database, so a Slack outage delays
messages and loses none.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult

from eve.errors import EveError
from eve.slack import messages, webapi
from eve.slack.core import UNLINKED, Installation, SlackCore, parse_command, short, user_message

log = logging.getLogger("eve.slack")
VERIFIED_TEAMS = "eve_verified_teams"  # set by the HTTP adapter: teams whose secret signed the request
COMMAND = "/eve"
# a button's work, as the clicking user: (installation, eve user, Slack user, channel) -> text for them
Click = Callable[[Installation, UUID, str, str], Awaitable[str | None]]


def build_app(core: SlackCore) -> AsyncApp:
    async def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult | None:
        inst = await core.installation(team_id)
        if inst is None:
            return None
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=inst.bot_token)

    app = AsyncApp(
        # users.info must answer well inside Slack's 3 s for the ack
        client=webapi.client(timeout=2),
        authorize=authorize,
        # HTTP mode: the API checked the signature against every installation's secret
        # before anything was parsed (eve.slack.verify); Bolt's own check knows one secret only.
        request_verification_enabled=False,
        signing_secret="checked-by-eve.slack.verify",
        raise_error_for_unhandled_request=False,
        logger=log,
    )

    @app.middleware
    async def only_verified_teams(context: Any, body: dict[str, Any], next: Any) -> Any:  # noqa: A002
        """HTTP mode: the body may name only a team whose signing secret signed it."""
        teams = context.get(VERIFIED_TEAMS)
        if teams is not None and context.team_id not in teams:
            log.warning("slack request for team %s signed with another installation's secret", context.team_id)
            from slack_bolt.response import BoltResponse

            return BoltResponse(status=401, body="")
        return await next()

    @app.command(COMMAND)
    async def on_command(ack: Any, body: dict[str, Any], client: Any) -> None:
        inst = await core.installation(body.get("team_id"))
        if inst is None:
            await _say(ack, "This Slack workspace is not connected to eve (`eve admin slack connect`).")
            return
        try:
            wtype, prompt = parse_command(body.get("text", ""), inst.default_type, await core.known_types())
            user_id = await core.resolve_user(inst, body["user_id"], client)
            if user_id is None:
                await _say(ack, UNLINKED.format(team=inst.team_id, user=body["user_id"]))
                return
            req = await core.create_request(inst, user_id, wtype, prompt, channel=body["channel_id"],
                                            slack_user=body["user_id"], inbound_key=body.get("trigger_id"))
        except Exception as exc:  # noqa: BLE001 - the user reads why, the log has the rest
            if not isinstance(exc, EveError):
                log.exception("slash command failed")
            await _say(ack, f"Not queued: {user_message(exc)}")
            return
        if req is None:  # a retried delivery of a command already queued
            await ack()
            return
        await _say(ack, f"Queued #{short(req.id)} ({wtype}); follow it in the thread eve starts in this channel.")

    async def clicked(body: dict[str, Any], client: Any, failed: str, work: Click) -> None:
        """Every button: the clicking user resolved (unlinked: told so), `work` run as them,
        its text (or why it failed) shown to them alone."""
        user, channel, thread_ts = _who(body)
        inst = await core.installation(_team(body))
        if inst is None:
            return
        try:
            user_id = await core.resolve_user(inst, user, client)
            text = (UNLINKED.format(team=inst.team_id, user=user) if user_id is None
                    else await work(inst, user_id, user, channel))
        except Exception as exc:  # noqa: BLE001 - a 409, a 404, a bad option: the user reads why
            text = f"{failed}: {user_message(exc)}"
        if text:
            await _ephemeral(client, channel, user, thread_ts, text)

    @app.action(messages.REPLAY)
    async def on_replay(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        await ack()

        async def replay(inst: Installation, user_id: UUID, user: str, channel: str) -> str | None:
            req = await core.replay(inst, user_id, action["value"], channel=channel, slack_user=user,
                                    inbound_key=f"action:{body.get('trigger_id') or action.get('action_ts')}")
            return f"Replay queued as #{short(req.id)}." if req else None  # None: a redelivered click

        await clicked(body, client, "Replay failed", replay)

    @app.action(messages.SHOW_OUTPUT)
    async def on_show_output(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        await ack()

        async def show(inst: Installation, user_id: UUID, user: str, channel: str) -> str | None:
            return messages.output_text(await core.result(user_id, action["value"]))

        await clicked(body, client, "Cannot show the output", show)

    @app.event("app_mention")
    async def on_mention(body: dict[str, Any], event: dict[str, Any], client: Any) -> None:
        """A reply mentioning eve in a thread eve owns continues that thread's conversation.

        Bolt acks the event before this runs. Slack redelivers an event it thinks was not
        acked in time: the same `event_id` conflicts on the outbox row and creates nothing.
        A mention outside a thread, or by a bot, is not for eve; what goes wrong is told to
        the mentioning user alone, in the thread."""
        thread_ts, user, channel = event.get("thread_ts"), event.get("user"), event.get("channel")
        if not thread_ts or not user or not channel or event.get("bot_id") or thread_ts == event.get("ts"):
            return
        inst = await core.installation(body.get("team_id") or event.get("team"))
        if inst is None:
            return
        try:
            user_id = await core.resolve_user(inst, user, client)
            if user_id is None:
                text: str | None = UNLINKED.format(team=inst.team_id, user=user)
            else:
                req = await core.continue_thread(inst, user_id, strip_mentions(event.get("text", "")),
                                                 channel=channel, thread_ts=thread_ts, slack_user=user,
                                                 inbound_key=f"event:{body.get('event_id') or event.get('ts')}")
                text = None  # queued (its progress and result follow in the thread), or a redelivery
                if req is None:
                    log.info("slack event %s already handled; ignored", body.get("event_id"))
                else:
                    log.info("mention in %s/%s continues the thread as %s", channel, thread_ts, req.id)
        except Exception as exc:  # noqa: BLE001 - the user reads why, the log has the rest
            if not isinstance(exc, EveError):
                log.exception("mention failed")
            text = f"Not queued: {user_message(exc)}"
        if text:
            log.info("mention in %s/%s not queued: %s", channel, thread_ts, text)
            await _ephemeral(client, channel, user, thread_ts, text)

    @app.action(re.compile(rf"^{messages.ANSWER}_\d+$"))
    async def on_answer(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        await ack()

        async def answer(inst: Installation, user_id: UUID, user: str, channel: str) -> str | None:
            row = await core.answer(user_id, action["value"])
            await _show_answered(client, channel, (body.get("message") or {}).get("ts"), row)
            return None

        await clicked(body, client, "Not answered", answer)

    @app.action(messages.ANSWER_TEXT)
    async def on_answer_text(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        """A free-text question's button: a modal with a text field (needs the click's trigger_id)."""
        await ack()

        async def open_modal(inst: Installation, user_id: UUID, user: str, channel: str) -> str | None:
            q = await core.question(user_id, action["value"])
            if q["status"] != "pending":
                return f"That question is {q['status']} already."
            await client.views_open(trigger_id=body["trigger_id"], view=messages.answer_modal(
                str(q["id"]), q["question"], channel=channel, message_ts=(body.get("message") or {}).get("ts")))
            return None

        await clicked(body, client, "Cannot answer", open_modal)

    @app.view(messages.ANSWER_MODAL)
    async def on_answer_modal(ack: Any, body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        """The modal's submission answers as the submitting user; a refusal (an empty answer,
        a second answer, an unlinked user) is shown in the modal, under the text field."""
        meta, text = messages.modal_answer(view)
        user = (body.get("user") or {}).get("id", "")
        inst = await core.installation(_team(body))
        if inst is None:
            await ack(response_action="errors", errors={messages.ANSWER_INPUT: "This workspace is not connected."})
            return
        try:
            user_id = await core.resolve_user(inst, user, client)
            if user_id is None:
                raise _Refused(UNLINKED.format(team=inst.team_id, user=user))
            if not text:
                raise _Refused("An answer must not be empty.")
            row = await core.answer_text(user_id, str(meta.get("q")), text[:messages.MAX_ANSWER])
        except Exception as exc:  # noqa: BLE001 - the user reads why, in the modal
            if not isinstance(exc, (EveError, _Refused)):
                log.exception("modal answer failed")
            why = str(exc) if isinstance(exc, _Refused) else user_message(exc)
            await ack(response_action="errors", errors={messages.ANSWER_INPUT: messages.clip(why, 1900)})
            return
        await ack()
        await _show_answered(client, str(meta.get("c") or ""), meta.get("m"), row)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        """Whatever Bolt or a middleware raises goes to eve's log (Bolt's own logger is not
        configured in the daemon), with the kind of payload it was."""
        log.error("slack listener failed on a %s payload: %r", body.get("type") or body.get("command"), error,
                  exc_info=error)

    return app


class _Refused(Exception):
    """A modal submission refused before it reached the question (the text says why)."""


async def _show_answered(client: Any, channel: str, ts: str | None, row: dict[str, Any]) -> None:
    """The question message shows who answered what, and its buttons go. Best effort: the
    answer is recorded either way."""
    if not channel or not ts:
        return
    try:
        await client.chat_update(channel=channel, ts=ts, text=messages.answered_text(row), blocks=[])
    except Exception:  # noqa: BLE001
        log.warning("could not update the question message", exc_info=True)


async def _say(ack: Any, text: str) -> None:
    """Answer a slash command with a message only the caller sees."""
    await ack(text=text, response_type="ephemeral")


_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def strip_mentions(text: str) -> str:
    """The prompt of a mention: the text without `<@U…>` user mentions (eve's own, others')."""
    return " ".join(_MENTION.sub(" ", text or "").split())


def _team(body: dict[str, Any]) -> str | None:
    return (body.get("team") or {}).get("id") or body.get("team_id")


def _who(body: dict[str, Any]) -> tuple[str, str, str | None]:
    message = body.get("message") or {}
    return (body["user"]["id"], (body.get("channel") or {}).get("id", ""),
            message.get("thread_ts") or message.get("ts"))


async def _ephemeral(client: Any, channel: str, user: str, thread_ts: str | None, text: str) -> None:
    """Only the clicking user sees it; best effort (an interaction's answer is not in the outbox)."""
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except Exception:  # noqa: BLE001
        log.warning("chat.postEphemeral failed for %s", user, exc_info=True)
