"""`/eve` end to end: signed slash command → the real API → the real worker running Claude Code
(fake Messages API) → the real `eve slack run` daemon posting to a fake Slack Web API."""

from __future__ import annotations

import pytest

from tests.support.fake_slack import interaction, slash_command
from tests.support.slackstack import SIGNING_SECRET, SLACK_USER, TEAM, make_slack_stack
from tests.support.waiting import wait_for
from tests.support.workerproc import start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(conn, db_url, tmp_path, variant_bin):
    s = await make_slack_stack(conn, db_url, tmp_path)
    worker = start_worker(db_url, tmp_path, path_prepend=variant_bin)
    try:
        s.start_daemon()
        worker.wait_healthy()
        yield s
    finally:
        worker.stop()
        s.stop()


def _texts(stack) -> list[str]:
    return [p["text"] for p in stack.fake.accepted("chat.postMessage")]


async def test_slash_command_thread_root_progress_and_result(stack, conn):
    r = slash_command(stack.api.url, SIGNING_SECRET, team=TEAM, user=SLACK_USER,
                      text='Echo "hello from slack" using the Bash tool', trigger_id="t-e2e")
    assert r.status_code == 200, r.text
    assert r.json()["text"].startswith("Queued #")
    row = await (await conn.execute("SELECT id FROM eve.orchestration_requests")).fetchone()
    short = str(row["id"])[:8]

    wait_for(lambda: any(t.startswith("✅ done") for t in _texts(stack)), 120,
             f"the result in the thread\n{stack.daemon_output()}")
    posts = stack.fake.accepted("chat.postMessage")
    root = next(p for p in posts if p["text"].startswith(f"queued · general · #{short}"))
    progress = [p for p in posts if "tool call" in p["text"]]
    result = [p for p in posts if p["text"].startswith("✅ done")]
    assert len(progress) == 1 and len(result) == 1, _texts(stack)
    assert progress[0]["thread_ts"] == root["_ts"] and result[0]["thread_ts"] == root["_ts"]
    assert progress[0]["channel"] == root["channel"] == "C0CHAN"
    assert "claimed by" in progress[0]["text"] or "finished" in progress[0]["text"]
    assert "hello from slack" in result[0]["text"]
    # Replay and Show output buttons carry the request id
    blocks = result[0]["blocks"]
    blocks = blocks if isinstance(blocks, list) else __import__("json").loads(blocks)
    actions = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [(a["action_id"], a["value"]) for a in actions] == [("eve_replay", str(row["id"])),
                                                               ("eve_show_output", str(row["id"]))]
    final = stack.fake.accepted("chat.update")[-1]
    assert final["ts"] == progress[0]["_ts"] and final["text"].startswith("finished (success) · 1 tool call")

    # Show output: the clicking user (a member) gets the output, only them
    payload = {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": SLACK_USER},
               "channel": {"id": "C0CHAN"}, "trigger_id": "t-show", "api_app_id": "A0APP",
               "message": {"ts": result[0]["_ts"], "thread_ts": root["_ts"]},
               "actions": [{"action_id": "eve_show_output", "value": str(row["id"]), "type": "button",
                            "block_id": "b", "action_ts": "1"}]}
    assert interaction(stack.api.url, SIGNING_SECRET, payload).status_code == 200
    shown = wait_for(lambda: stack.fake.accepted("chat.postEphemeral"), 30, "the output, ephemeral")
    assert shown[0]["user"] == SLACK_USER and "hello from slack" in shown[0]["text"]
