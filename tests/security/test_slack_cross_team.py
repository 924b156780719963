"""Threat: the admin of one Slack workspace connected to eve (org B, team T2, who knows T2's
signing secret) signs a request that names another workspace (team T1, org A) — a slash
command as one of A's linked users, a button click on A's question. The API tries every
installation's secret (the body says its team only once parsed); a body may name only a
team whose own secret signed it (eve/slack/verify.py, the `only_verified_teams` middleware).
Both ways, with two real installations on one API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.fake_slack import interaction, slash_command
from tests.support.slackstack import SIGNING_SECRET, SIGNING_SECRET_2, SLACK_USER, SLACK_USER_2, TEAM, TEAM_2, \
    make_slack_stack


@pytest.fixture
async def stack(conn, db_url, tmp_path):
    s = await make_slack_stack(conn, db_url, tmp_path, second_team=True)
    try:
        yield s
    finally:
        s.stop()


async def _requests(conn: Any) -> list[dict[str, Any]]:
    return await (await conn.execute("SELECT org_id, prompt FROM eve.orchestration_requests "
                                     "ORDER BY created_at")).fetchall()


async def test_a_body_naming_one_team_signed_with_another_teams_secret_is_refused_both_ways(stack, conn):
    a, b = stack.tenant, stack.other
    assert b is not None
    for team, user, secret in ((TEAM, SLACK_USER, SIGNING_SECRET_2), (TEAM_2, SLACK_USER_2, SIGNING_SECRET)):
        r = slash_command(stack.api.url, secret, team=team, user=user, text="run as the other org",
                          trigger_id=f"t-cross-{team}")
        assert r.status_code == 401, (team, r.status_code, r.text)
        click = {"type": "block_actions", "team": {"id": team}, "user": {"id": user, "team_id": team},
                 "channel": {"id": "C0CHAN"}, "trigger_id": f"t-click-{team}", "api_app_id": "A0APP",
                 "actions": [{"action_id": "eve_answer_0", "block_id": "b", "value": "x", "type": "button",
                              "action_ts": "1"}]}
        r = interaction(stack.api.url, secret, click)
        assert r.status_code == 401, (team, r.status_code, r.text)
    assert await _requests(conn) == []  # nothing created
    assert stack.fake.accepted("users.info") == []  # nobody was looked up for them

    # the same bodies signed by their own team are served, each in its own org
    for team, user, secret in ((TEAM, SLACK_USER, SIGNING_SECRET), (TEAM_2, SLACK_USER_2, SIGNING_SECRET_2)):
        r = slash_command(stack.api.url, secret, team=team, user=user, text=f"hello from {team}",
                          trigger_id=f"t-own-{team}")
        assert r.status_code == 200, (team, r.text)
    assert [(r["org_id"], r["prompt"]) for r in await _requests(conn)] == [
        (a.org_id, f"hello from {TEAM}"), (b.org_id, f"hello from {TEAM_2}")]
