"""Operator commands on installations and links (`eve admin slack ...`), as the service role."""

from __future__ import annotations

import re
from typing import Any

from eve import queue
from eve.errors import NotFound, ValidationError
from eve.queries import Q
from eve.slack import secretbox

TEAM_ID = re.compile(r"^[A-Z0-9]{2,32}$")


def _check(team_id: str, bot_token: str, signing_secret: str, app_token: str | None) -> None:
    if not TEAM_ID.match(team_id or ""):
        raise ValidationError(f"team id {team_id!r} is not a Slack team id (like T012AB3CD: Slack → About this "
                              "workspace, or the team_id of any request)")
    if not bot_token.startswith("xoxb-"):
        raise ValidationError("--bot-token must be the app's Bot User OAuth Token (xoxb-…), from OAuth & Permissions")
    if len(signing_secret.strip()) < 16:
        raise ValidationError("--signing-secret must be the app's Signing Secret "
                              "(Basic Information → App Credentials)")
    if app_token is not None and not app_token.startswith("xapp-"):
        raise ValidationError("--app-token must be an app-level token (xapp-…) with connections:write, "
                              "for Socket Mode")


async def connect(conn: Any, key: bytes, *, org: str, team_id: str, bot_token: str, signing_secret: str,
                  app_token: str | None, default_type: str) -> dict[str, Any]:
    """Store (or replace) the installation of `team_id` for org `org`; secrets encrypted."""
    _check(team_id, bot_token, signing_secret, app_token)
    org_row = await (await conn.execute(Q.slack_org_by_slug, {"slug": org})).fetchone()
    if org_row is None:
        raise NotFound(f"organization {org!r} not found (eve admin org create {org})")
    await queue.get_worker_type(conn, default_type)
    async with conn.transaction():
        inst = await (await conn.execute(Q.slack_installation_upsert, {
            "org_id": org_row["id"], "team_id": team_id, "default_type": default_type})).fetchone()
        await conn.execute(Q.slack_secrets_upsert, {
            "installation_id": inst["id"], "org_id": org_row["id"],
            "bot_token": secretbox.seal(key, bot_token, aad=team_id),
            "signing_secret": secretbox.seal(key, signing_secret.strip(), aad=team_id),
            "app_token": secretbox.seal(key, app_token, aad=team_id) if app_token else None})
    return dict(inst)


async def link(conn: Any, *, team_id: str, slack_user: str, email: str) -> dict[str, Any]:
    if not TEAM_ID.match(slack_user or ""):
        raise ValidationError(f"Slack user id {slack_user!r} is not one "
                              "(like U012AB3CD: profile → ⋮ → Copy member ID)")
    row = await (await conn.execute(Q.slack_link_upsert, {"team_id": team_id, "slack_user_id": slack_user,
                                                          "email": email})).fetchone()
    if row is None:
        raise NotFound(f"no installation for team {team_id}, or {email} is not a member of its org "
                       "(eve admin slack list; eve admin member add ORG EMAIL)")
    return dict(row)


async def installations(conn: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in await (await conn.execute(Q.slack_installations_list)).fetchall()]


async def disconnect(conn: Any, team_id: str) -> None:
    if await (await conn.execute(Q.slack_installation_delete, {"team_id": team_id})).fetchone() is None:
        raise NotFound(f"no installation for team {team_id}")
