"""What eve posts in a Slack thread: pure functions from a request's state to message bodies."""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from eve.slack.core import short

REPLAY = "eve_replay"
SHOW_OUTPUT = "eve_show_output"
ANSWER = "eve_answer"
# A free-text question: the button opens a modal (views.open needs the click's trigger_id),
# whose submission answers it.
ANSWER_TEXT = "eve_answer_text"
ANSWER_MODAL = "eve_answer_modal"
ANSWER_INPUT = "answer"
MAX_ANSWER = 2000
MAX_TEXT = 2900  # a section block holds 3000 characters


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Text an agent (or a prompt) wrote, made inert in Slack mrkdwn: no <!channel> pings, no
    <https://evil|innocent> links, no <@U…> mentions. Slack's own rule: escape &, <, >."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe(text: str, limit: int = MAX_TEXT) -> str:
    """escape() then clip, never leaving half an entity (`&am…`) at the cut."""
    out = escape(text)
    if len(out) <= limit:
        return out
    return re.sub(r"&[a-z]{0,3}$", "", out[: limit - 1]) + "…"


def root_text(state: dict[str, Any], slack_user: str | None = None) -> str:
    head = f"queued · {state['worker_type']} · #{short(state['id'])}"
    asked = f"<@{slack_user}> asked: " if slack_user else ""
    return f"{head}\n>{asked}{safe(' '.join(state['prompt'].split()), 300)}"


def _elapsed(state: dict[str, Any]) -> str:
    start: datetime | None = state.get("started_at") or state.get("claimed_at")
    if start is None:
        return "0s"
    end: datetime = state.get("finished_at") or state["now"]
    seconds = max(0, int((end - start).total_seconds()))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _cost(state: dict[str, Any]) -> str:
    cost = state.get("cost_usd")
    return f"${Decimal(cost):.4f}" if cost is not None else "$—"


def progress_text(state: dict[str, Any]) -> str:
    """The one progress message, edited in place: who runs it, tool calls, elapsed, cost."""
    if state.get("finished"):
        head = f"finished ({state['result_status']})"
    elif state.get("status") == "waiting":
        head = "waiting for an answer"
    elif state.get("claimed_by"):
        head = f"claimed by {state['claimed_by']}"
    else:
        head = "queued"
    calls = int(state.get("tool_calls") or 0)
    return f"{head} · {calls} tool call{'s' if calls != 1 else ''} · {_elapsed(state)} · {_cost(state)}"


def result_message(state: dict[str, Any]) -> dict[str, Any]:
    """The result summary (or the error code and message) with Replay and Show output buttons."""
    rid = str(state["id"])
    if state["result_status"] == "success":
        text = f"✅ done · #{short(rid)}\n{safe(state.get('summary') or '(no summary)')}"
    else:
        code = escape(state.get("error_code") or state["result_status"])
        error = safe(state.get("error") or "(no message)")
        text = f"❌ {state['result_status']} · #{short(rid)} · `{code}`\n{error}"
    buttons = [
        {"type": "button", "action_id": REPLAY, "text": {"type": "plain_text", "text": "Replay"}, "value": rid},
        {"type": "button", "action_id": SHOW_OUTPUT, "text": {"type": "plain_text", "text": "Show output"},
         "value": rid},
    ]
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
                                     {"type": "actions", "block_id": f"eve_result_{short(rid)}",
                                      "elements": buttons}]}


def question_message(q: dict[str, Any]) -> dict[str, Any]:
    """An agent's question with one button per option (value: question id and option index),
    or, for a free-text question, one "Answer…" button that opens a text field (a modal).
    """
    qid = str(q["id"])
    text = f"❓ The agent asks: {safe(q['question'], 2500)}"
    options = list(q.get("options") or [])
    if not options:
        text += f"\n(Free text: the button below, or `eve hitl answer {qid[:8]} \"…\"`.)"
        button = {"type": "button", "action_id": ANSWER_TEXT, "value": qid,
                  "text": {"type": "plain_text", "text": "Answer…"}}
        return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
                                         {"type": "actions", "block_id": f"eve_q_{qid[:8]}", "elements": [button]}]}
    buttons = [{"type": "button", "action_id": f"{ANSWER}_{i}", "value": f"{qid}:{i}",
                "text": {"type": "plain_text", "text": clip(option, 75)}} for i, option in enumerate(options)]
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
                                     {"type": "actions", "block_id": f"eve_q_{qid[:8]}", "elements": buttons}]}


def answer_modal(qid: str, question: str, *, channel: str, message_ts: str | None) -> dict[str, Any]:
    """The text field for a free-text answer. private_metadata carries what the submission
    needs (Slack sends it back as it was): the question, and the message to update."""
    meta = json.dumps({"q": qid, "c": channel, "m": message_ts})
    return {"type": "modal", "callback_id": ANSWER_MODAL, "private_metadata": meta,
            "title": {"type": "plain_text", "text": "Answer the agent"},
            "submit": {"type": "plain_text", "text": "Answer"},
            "close": {"type": "plain_text", "text": "Cancel"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": safe(question, 2500)}},
                       {"type": "input", "block_id": ANSWER_INPUT,
                        "label": {"type": "plain_text", "text": "Your answer"},
                        "element": {"type": "plain_text_input", "action_id": ANSWER_INPUT, "multiline": True,
                                    "max_length": MAX_ANSWER}}]}


def modal_answer(view: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(metadata, answer text) of a submitted answer modal."""
    meta = json.loads(view.get("private_metadata") or "{}")
    value = (((view.get("state") or {}).get("values") or {}).get(ANSWER_INPUT) or {}).get(ANSWER_INPUT) or {}
    return meta, str(value.get("value") or "").strip()


def answered_text(row: dict[str, Any]) -> str:
    """The question message once answered (its buttons go)."""
    given = (row["response"] or {}).get("answer")
    return (f"❓ {safe(row['question'], 2500)}\n"
            f"✅ {escape(row['answered_by_name'])} answered: {escape(str(given))}")


def output_text(result: Any) -> str:
    """The 'Show output' reply: the summary and the output, clipped to one message."""
    import json

    parts = [f"*#{short(result.request_id)} · {result.status}*"]
    if result.summary:
        parts.append(escape(result.summary))
    if result.output is not None:
        body = result.output if isinstance(result.output, str) else json.dumps(result.output, indent=1,
                                                                                ensure_ascii=False)
        parts.append(f"```{safe(body, 2500)}```")
    if result.error:
        parts.append(f"`{escape(result.error_code or 'error')}`: {escape(result.error)}")
    return clip("\n".join(parts))
