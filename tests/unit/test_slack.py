"""Slack pieces that are pure: command parsing, signatures, secret sealing, messages, backoff."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from uuid import uuid4

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from eve.errors import ConfigError, ValidationError
from eve.slack import messages, secretbox
from eve.slack.core import parse_command
from eve.slack.delivery import retry_delay
from eve.slack.verify import verified_teams
from tests.support.fake_slack import sign

SECRET = "s" * 40


def test_parse_command_type_prefix_and_default():
    assert parse_command("review this PR", "general") == ("general", "review this PR")
    assert parse_command("code-review: look at #42", "general") == ("code-review", "look at #42")
    assert parse_command("  data:  sum it\nplease ", "general") == ("data", "sum it\nplease")
    assert parse_command("http://x: not a type", "general") == ("general", "http://x: not a type")
    known = {"general", "code-review"}
    assert parse_command("code-review: look", "general", known) == ("code-review", "look")
    assert parse_command("Summary: it broke", "general", known) == ("general", "Summary: it broke")
    assert parse_command("note: it broke", "general", known) == ("general", "note: it broke")
    with pytest.raises(ValidationError, match="usage: /eve"):
        parse_command("code-review:   ", "general")
    with pytest.raises(ValidationError):
        parse_command("", "general")


def test_signature_checks_secret_body_and_five_minute_window():
    body = b"team_id=T1&text=hi"
    pairs = [("T1", "secret-one-0123456789"), ("T2", "secret-two-0123456789")]
    assert verified_teams(pairs, body, sign("secret-one-0123456789", body)) == {"T1"}
    assert verified_teams(pairs, body, sign("wrong-secret-0123456789", body)) == set()
    assert verified_teams(pairs, body + b"x", sign("secret-one-0123456789", body)) == set()  # body tampered
    now = int(time.time())
    assert verified_teams(pairs, body, sign("secret-one-0123456789", body, now - 299)) == {"T1"}
    assert verified_teams(pairs, body, sign("secret-one-0123456789", body, now - 301)) == set()
    assert verified_teams(pairs, body, sign("secret-one-0123456789", body, now + 301)) == set()
    assert verified_teams(pairs, body, {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"}) == set()
    assert verified_teams(pairs, body, {}) == set()


def test_secretbox_round_trip_is_bound_to_key_and_team():
    key = secretbox.key_from(SECRET)
    blob = secretbox.seal(key, "xoxb-123", aad="T1")
    assert b"xoxb-123" not in blob
    assert secretbox.unseal(key, blob, aad="T1") == "xoxb-123"
    with pytest.raises(ConfigError, match="JWT_SECRET changed"):
        secretbox.unseal(secretbox.key_from("t" * 40), blob, aad="T1")
    with pytest.raises(ConfigError):  # a ciphertext moved to another installation's row
        secretbox.unseal(key, blob, aad="T2")
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        secretbox.key_from("short")


def test_progress_and_result_messages():
    now = datetime.now(timezone.utc)
    rid = uuid4()
    state = {"id": rid, "worker_type": "general", "prompt": "do  it", "status": "processing",
             "claimed_by": "general-1", "claimed_at": now - timedelta(seconds=75), "started_at": None,
             "finished_at": None, "now": now, "tool_calls": 3, "finished": False, "cost_usd": None}
    assert messages.progress_text(state) == "claimed by general-1 · 3 tool calls · 1m15s · $—"
    assert messages.root_text(state, "U1").startswith(f"queued · general · #{str(rid)[:8]}\n><@U1> asked: do it")
    done = {**state, "finished": True, "result_status": "failed", "error_code": "timeout", "error": "too slow",
            "cost_usd": Decimal("0.0123"), "finished_at": now}
    assert messages.progress_text(done) == "finished (failed) · 3 tool calls · 1m15s · $0.0123"
    msg = messages.result_message(done)
    assert "`timeout`" in msg["text"] and "too slow" in msg["text"]
    assert [b["action_id"] for b in msg["blocks"][1]["elements"]] == ["eve_replay", "eve_show_output"]
    q = messages.question_message({"id": rid, "question": "Ship?", "options": ["yes", "no"]})
    assert [(b["action_id"], b["value"]) for b in q["blocks"][1]["elements"]] == [
        ("eve_answer_0", f"{rid}:0"), ("eve_answer_1", f"{rid}:1")]


def _error(status: int, headers: dict[str, str]) -> SlackApiError:
    resp = AsyncSlackResponse(client=None, http_verb="POST", api_url="x", req_args={}, data={"ok": False},
                              headers=headers, status_code=status)
    return SlackApiError("failed", resp)


def test_retry_delay_respects_retry_after_and_backs_off():
    assert retry_delay(_error(429, {"Retry-After": "7"}), 1) == 7.0
    assert retry_delay(_error(429, {}), 1) == 30.0
    assert 0.5 <= retry_delay(_error(503, {}), 1) <= 2.0
    assert retry_delay(_error(503, {}), 30) <= 300.0
    assert 8.0 <= retry_delay(OSError("connection refused"), 4) <= 16.0


def test_agent_text_cannot_ping_link_or_mention_in_slack():
    rid = uuid4()
    hostile = "done <!channel> see <https://evil.example|docs> ask <@U0BOSS> & co"
    state = {"id": rid, "result_status": "success", "summary": hostile}
    text = messages.result_message(state)["text"]
    assert "<" not in text.split("\n", 1)[1] and ">" not in text.split("\n", 1)[1]
    assert "&lt;!channel&gt;" in text and "&amp; co" in text
    q = messages.question_message({"id": rid, "question": "<!here> approve?", "options": []})
    assert "<!here>" not in q["text"]
    long = messages.safe("&" * 5000, 100)
    assert len(long) <= 100 and long.endswith("&amp;…")
