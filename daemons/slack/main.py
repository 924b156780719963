"""The Slack daemon: delivery loop always, Socket Mode for installations with an app token.

Two database identities, as elsewhere: the delivery loop reads every org's threads and
writes their delivery state as `service_role` (DATABASE_URL); Socket Mode listeners create
requests as the Slack user's eve user under row-level security, through the same SlackCore
the API uses, on an eve_api connection (EVE_API_DATABASE_URL; DATABASE_URL when unset,
which works with an owner DSN in development).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from eve.db import make_pool
from eve.errors import ConfigError, EveError
from eve.logging import setup as setup_logging
from eve.slack import secretbox
from eve.slack.app import build_app
from eve.slack.core import SlackCore, decrypt_rows
from eve.slack.delivery import Delivery, DeliverySettings

log = logging.getLogger("eve.slack")


async def serve(dsn: str, api_dsn: str, jwt_secret: str | None, settings: DeliverySettings,
                socket_mode: bool = True) -> None:
    key = secretbox.key_from(jwt_secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = make_pool(dsn, min_size=1, max_size=4, name="eve-slack", service_only=True)
    api = make_pool(api_dsn, min_size=1, max_size=4, name="eve-slack-api")
    await service.open(wait=False)
    await api.open(wait=False)
    handlers = []
    try:
        if socket_mode:
            handlers = await _socket_mode(service, api, key)
        log.info("slack daemon running (socket mode connections: %d)", len(handlers))
        await Delivery(service, key, settings).run(stop)
    finally:
        for handler in handlers:
            await handler.close_async()
        await api.close()
        await service.close()


async def _socket_mode(service: object, api: object, key: bytes) -> list[object]:
    """One Socket Mode connection per distinct app token (an app serves all its workspaces)."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from eve.db import as_service
    from eve.queries import Q

    async with as_service(service) as conn:  # type: ignore[arg-type]
        rows = await (await conn.execute(Q.slack_installations_service)).fetchall()
    tokens = sorted({i.app_token for i in decrypt_rows(rows, key) if i.app_token})
    if not tokens:
        return []
    app = build_app(SlackCore(api, key, socket_mode=True))  # type: ignore[arg-type]
    handlers = []
    for token in tokens:
        handler = AsyncSocketModeHandler(app, token)
        await handler.connect_async()
        handlers.append(handler)
    return handlers


def cli(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="eve slack run")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    p.add_argument("--api-database-url", default=os.environ.get("EVE_API_DATABASE_URL"))
    p.add_argument("--poll-interval", type=float, default=float(os.environ.get("EVE_SLACK_POLL_INTERVAL", "1")))
    p.add_argument("--progress-interval", type=float,
                   default=float(os.environ.get("EVE_SLACK_PROGRESS_INTERVAL", "3")))
    p.add_argument("--no-socket-mode", action="store_true")
    args = p.parse_args(argv)
    setup_logging()
    try:
        if not args.database_url:
            raise ConfigError("DATABASE_URL is not set: the Slack daemon needs PostgreSQL (the worker's DSN)")
        asyncio.run(serve(args.database_url, args.api_database_url or args.database_url, os.environ.get("JWT_SECRET"),
                          DeliverySettings(poll_interval=args.poll_interval,
                                           progress_interval=args.progress_interval),
                          socket_mode=not args.no_socket_mode))
    except EveError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
