"""Socket Mode: the same listeners over a websocket, served by the real `eve slack run` daemon."""

from __future__ import annotations

import pytest

from tests.support.fake_slack import FakeSocketMode
from tests.support.slackstack import SLACK_USER, TEAM, make_slack_stack
from tests.support.waiting import wait_for


@pytest.fixture
async def stack(conn, db_url, tmp_path):
    socket = FakeSocketMode()
    s = await make_slack_stack(conn, db_url, tmp_path, app_token="xapp-1-A0APP-socket")
    s.fake.socket_url = socket.url
    try:
        s.start_daemon()
        if not socket.connected.wait(30):
            raise AssertionError(f"the daemon did not open a Socket Mode connection\n{s.daemon_output()}")
        yield s, socket
    finally:
        s.stop()
        socket.stop()


def _command(user: str, text: str, trigger: str, envelope: str) -> dict:
    return {"envelope_id": envelope, "type": "slash_commands", "accepts_response_payload": True,
            "payload": {"token": "legacy", "team_id": TEAM, "team_domain": "test", "channel_id": "C0SOCK",
                        "channel_name": "general", "user_id": user, "user_name": "x", "command": "/eve",
                        "text": text, "api_app_id": "A0APP", "trigger_id": trigger,
                        "response_url": "https://hooks.slack.invalid/x"}}


async def test_slash_command_over_socket_mode_queues_and_threads(stack, conn):
    s, socket = stack
    assert s.fake.accepted("apps.connections.open")  # the app token opened the connection
    socket.send(_command(SLACK_USER, "say hi", "t-sock", "env-1"))
    ack = socket.ack_for("env-1", 30)
    assert ack["payload"]["text"].startswith("Queued #"), ack
    # Slack redelivers an envelope it got no ack for in time: same trigger, nothing more
    socket.send(_command(SLACK_USER, "say hi", "t-sock", "env-2"))
    socket.ack_for("env-2", 30)
    rows = await (await conn.execute("SELECT id, user_id, reply_to FROM eve.orchestration_requests")).fetchall()
    assert len(rows) == 1 and rows[0]["user_id"] == s.tenant.user_id
    assert rows[0]["reply_to"]["channel"] == "C0SOCK"
    root = wait_for(lambda: s.fake.accepted("chat.postMessage"), 30, "the thread root")[0]
    assert root["channel"] == "C0SOCK" and root["text"].startswith(f"queued · general · #{str(rows[0]['id'])[:8]}")


async def test_unlinked_user_over_socket_mode_gets_the_ephemeral_and_no_request(stack, conn):
    s, socket = stack
    socket.send(_command("U0NOBODY", "rm -rf /", "t-nobody", "env-3"))
    ack = socket.ack_for("env-3", 30)
    assert "ask an operator to link you" in ack["payload"]["text"]
    assert ack["payload"].get("response_type") == "ephemeral"
    assert await (await conn.execute("SELECT count(*) AS n FROM eve.orchestration_requests")).fetchone() == {"n": 0}


async def test_mention_in_the_thread_over_socket_mode_continues_it_once(stack, conn):
    """The same app_mention listener as HTTP mode; a redelivered envelope (same event_id) adds nothing."""
    from eve import queue
    from eve.models import Outcome
    from tests.support.fake_slack import mention_event

    s, socket = stack
    socket.send(_command(SLACK_USER, "say hi", "t-m", "env-m1"))
    socket.ack_for("env-m1", 30)
    [req] = await queue.claim(conn, "general", "w-test")
    await queue.complete(conn, req, "w-test", Outcome(status="success", summary="hi", output={"text": "hi"}))
    wait_for(lambda: [p for p in s.fake.accepted("chat.postMessage") if p["text"].startswith("✅")], 30, "the result")
    root = next(p for p in s.fake.accepted("chat.postMessage") if p["text"].startswith("queued"))["_ts"]
    event = mention_event(team=TEAM, user=SLACK_USER, text="<@UBOT> and again", event_id="EvSock1",
                          thread_ts=root, channel="C0SOCK")
    for envelope in ("env-m2", "env-m3"):
        socket.send({"envelope_id": envelope, "type": "events_api", "accepts_response_payload": False,
                     "payload": event})
        socket.ack_for(envelope, 30)

    async def continued() -> list:
        return await (await conn.execute("SELECT r.prompt, r.reply_to, c.continues FROM eve.request_continuations c "
                                         "JOIN eve.orchestration_requests r ON r.id = c.request_id")).fetchall()

    wait_for(lambda: "slack event EvSock1 already handled; ignored" in s.daemon_output(), 30,
             f"the redelivery to be handled\n{s.daemon_output()}\nephemerals: {s.fake.accepted('chat.postEphemeral')}")
    [second] = await continued()  # one, although the event came twice
    assert second["continues"] == req.id and second["prompt"] == "and again"
    assert second["reply_to"]["thread_ts"] == root and second["reply_to"]["channel"] == "C0SOCK"
