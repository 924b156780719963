"""POST /slack/events: Slack's HTTP mode (slash commands, interactivity, Events API).

The signature is checked on the raw body before anything parses it (eve.slack.verify):
a bad signature or a timestamp more than 5 minutes away is 401 and touches nothing else.
Then the body goes to the same Bolt App that `eve slack run` drives in Socket Mode.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from slack_bolt.request.async_request import AsyncBoltRequest

from eve.daemons.api.errors import ErrorBody
from eve.errors import AuthError
from eve.slack import secretbox, verify
from eve.slack.app import VERIFIED_TEAMS, build_app
from eve.slack.core import SlackCore


def _slack(state: State) -> tuple[SlackCore, Any]:
    """The SlackCore and Bolt App of this API process, built on first use."""
    if getattr(state, "slack", None) is None:
        core = SlackCore(state.pool, secretbox.key_from(state.settings.jwt_secret),
                         settings=state.settings.queue, worker_types=state.worker_types)
        state.slack = (core, build_app(core))
    return state.slack  # type: ignore[no-any-return]


RESPONSES = {
    401: ResponseSpec(ErrorBody, description="Missing or bad X-Slack-Signature, or X-Slack-Request-Timestamp "
                                             "more than 5 minutes off"),
    413: ResponseSpec(ErrorBody, description="Body over 2 MB"),
    500: ResponseSpec(ErrorBody, description="Unexpected error (logged with the id in the message)"),
    503: ResponseSpec(ErrorBody, description="Database unavailable"),
}


@post("/slack/events", tags=["slack"], security=[], status_code=200, responses=RESPONSES,
      summary="Slack's request URL (slash commands, buttons, events); signed by Slack, not by a bearer token")
async def slack_events(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    body = await request.body()
    core, app = _slack(state)
    pairs = [(i.team_id, i.signing_secret) for i in (await core.installations()).values()]
    teams = verify.verified_teams(pairs, body, request.headers)
    if not teams:  # maybe an installation connected in the last few seconds
        pairs = [(i.team_id, i.signing_secret) for i in (await core.installations(fresh=True)).values()]
        teams = verify.verified_teams(pairs, body, request.headers)
    if not teams:
        raise AuthError("invalid Slack request signature (or its timestamp is more than 5 minutes off)")
    bolt = await app.async_dispatch(AsyncBoltRequest(
        body=body.decode("utf-8", errors="replace"), query=request.url.query,
        headers={k: v for k, v in request.headers.items()}, context={VERIFIED_TEAMS: teams}))
    return Response(content=(bolt.body or "").encode(), status_code=bolt.status,
                    headers=bolt.first_headers_without_set_cookie(),
                    media_type=bolt.first_headers().get("content-type", "text/plain"))


HANDLERS = [slack_events]
