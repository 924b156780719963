"""A mention in the thread continues the Claude Code session, end to end: `/eve` → the real
worker running Claude Code (fake Messages API) → result in the thread → `@eve …` reply →
a continuation request that the worker resumes from the first request's kept session
(transcript and workspace) → its result in the same thread (the real `eve slack run`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.fake_anthropic import FakeAnthropic, _text_of, last_tool_result
from tests.support.fake_slack import app_mention, slash_command
from tests.support.slackstack import SIGNING_SECRET, SLACK_USER, TEAM, make_slack_stack
from tests.support.waiting import async_wait_for, wait_for
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e
MARK = "CONTINUE-7f3a"


class ContinuedTurn:
    """The fake model's side of the continuation: `cat notes.txt` (did the workspace come
    back?), then an answer quoting it. Records what it was sent."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any] | None:
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        if not body.get("tools") or not any(MARK in _text_of(m.get("content")) for m in users):
            return None
        self.seen.append(body)
        notes = last_tool_result(body)
        if notes is None:
            return {"tool": "Bash", "input": {"command": "cat notes.txt || echo 'no notes'"}}
        return {"text": f"continued; notes: {notes.strip()}"}


@pytest.fixture
def continued(fake_api: FakeAnthropic):
    rule = ContinuedTurn()
    fake_api.add_rule(rule)
    try:
        yield rule
    finally:
        fake_api.rules.remove(rule)


@pytest.fixture
async def stack(conn, db_url, tmp_path, variant_bin):
    s = await make_slack_stack(conn, db_url, tmp_path)
    worker = start_worker(db_url, tmp_path, path_prepend=variant_bin)
    try:
        s.start_daemon()
        worker.wait_healthy()
        yield s, worker
    finally:
        worker.stop()
        s.stop()


def _results(stack) -> list[dict[str, Any]]:
    return [p for p in stack.fake.accepted("chat.postMessage") if p["text"].startswith(("✅", "❌"))]


async def test_mention_reply_resumes_the_session_and_answers_in_the_thread(stack, conn, continued):
    s, worker = stack
    r = slash_command(s.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER, trigger_id="t-c1",
                      text="[[bash: echo seed-from-the-first-turn > notes.txt && echo wrote the notes]]")
    assert r.status_code == 200, r.text
    wait_for(lambda: _results(s), 120, f"the first result\n{s.daemon_output()}\n{worker.output()}")
    [first] = await (await conn.execute("SELECT id FROM eve.orchestration_requests")).fetchall()

    async def kept_session() -> dict[str, Any] | None:
        return await (await conn.execute("SELECT session_id, finished_at, workspace_archive IS NOT NULL AS archived "
                                         "FROM eve.request_sessions WHERE request_id = %s", (first["id"],))).fetchone()

    # the worker keeps the session right after the result (0013), so the result's message
    # in Slack may come first: wait for it rather than race the workspace archive
    kept = await async_wait_for(kept_session, 60, f"the kept session\n{worker.output()}")
    assert kept["finished_at"] is not None and kept["archived"]
    root = next(p for p in s.fake.accepted("chat.postMessage") if p["text"].startswith("queued"))["_ts"]

    kw = dict(team=TEAM, user=SLACK_USER, text=f"<@UBOT> {MARK} what is in your notes?", event_id="EvE2E1",
              thread_ts=root)
    assert app_mention(s.api.url, SIGNING_SECRET, **kw).status_code == 200
    done = wait_for(lambda: [p for p in _results(s) if "continued" in p["text"]], 120,
                    f"the continuation's result\n{s.daemon_output()}\n{worker.output()}")
    assert app_mention(s.api.url, SIGNING_SECRET, **kw).status_code == 200  # Slack's retry: nothing more
    wait_for(lambda: "slack event EvE2E1 already handled; ignored" in s.api.output(), 30, "the redelivery")

    # the same thread, no second root; the workspace came back with the session
    assert done[0]["thread_ts"] == root
    assert "seed-from-the-first-turn" in done[0]["text"]
    assert sum(p["text"].startswith("queued") for p in s.fake.accepted("chat.postMessage")) == 1
    rows = await (await conn.execute("SELECT r.id, r.prompt, c.continues FROM eve.orchestration_requests r "
                                     "LEFT JOIN eve.request_continuations c ON c.request_id = r.id "
                                     "ORDER BY r.created_at")).fetchall()
    assert len(rows) == 2 and rows[1]["continues"] == first["id"]
    assert rows[1]["prompt"] == f"{MARK} what is in your notes?"
    # the resumed call carried the first request's turns: its prompt and its tool call
    assert continued.seen, "the fake API never saw the continuation"
    convo = "\n".join(_text_of(m.get("content")) for m in continued.seen[0]["messages"])
    assert "echo seed-from-the-first-turn" in convo and "wrote the notes" in convo
    ev = await (await conn.execute("SELECT data FROM eve.request_events WHERE request_id = %s AND kind = 'resumed'",
                                   (rows[1]["id"],))).fetchone()
    assert ev["data"]["continues"] == str(first["id"]) and ev["data"]["workspace"] == "restored"
    assert ev["data"]["session_id"] == kept["session_id"]

    # one kept session per thread: the continuation's replaces the first one's (also
    # written right after its result, so waited for)
    async def only_the_continuations() -> bool:
        kept_now = await (await conn.execute("SELECT request_id FROM eve.request_sessions")).fetchall()
        return [r["request_id"] for r in kept_now] == [rows[1]["id"]]

    await async_wait_for(only_the_continuations, 60, "the continuation's session to replace the first")
