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

from typing import Any

from psycopg_pool import AsyncConnectionPool

from eve.db import as_service, listen_enabled, make_pool
from eve.errors import ConfigError, EveError
from eve.logging import setup as setup_logging
from eve.queries import Q
from eve.slack import secretbox
from eve.slack.app import build_app
from eve.slack.core import SlackCore, decrypt_rows
from eve.slack.delivery import Delivery, DeliverySettings, listen

log = logging.getLogger("eve.slack")


SOCKET_REFRESH_S = 30.0


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
    sockets = SocketMode(service, build_app(SlackCore(api, key, socket_mode=True)), key)
    wake = asyncio.Event()
    # poll-only behind PgBouncer in transaction pooling (EVE_LISTEN=off), as everywhere
    listener = asyncio.create_task(listen(dsn, wake)) if listen_enabled() else None
    delivery = asyncio.create_task(Delivery(service, key, settings).run(stop, wake))
    try:
        while not stop.is_set():
            if socket_mode:
                await sockets.refresh()
            try:
                await asyncio.wait_for(stop.wait(), timeout=SOCKET_REFRESH_S)
            except TimeoutError:
                pass
        await delivery
    finally:
        delivery.cancel()
        if listener is not None:
            listener.cancel()
        await sockets.close()
        await api.close()
        await service.close()


class SocketMode:
    """One Socket Mode connection per distinct app token (an app serves all its workspaces);
    tokens are looked up again every SOCKET_REFRESH_S, so a workspace connected with
    --app-token (or disconnected) needs no restart."""

    def __init__(self, service: AsyncConnectionPool, app: Any, key: bytes) -> None:
        self.service = service
        self.app = app
        self.key = key
        self.handlers: dict[str, Any] = {}

    async def refresh(self) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        try:
            async with as_service(self.service) as conn:
                rows = await (await conn.execute(Q.slack_installations_service)).fetchall()
            tokens = {i.app_token for i in decrypt_rows(rows, self.key) if i.app_token}
        except Exception:  # noqa: BLE001 - the database may be restarting; try again next round
            log.warning("could not read Slack installations", exc_info=True)
            return
        for token in set(self.handlers) - tokens:
            await self.handlers.pop(token).close_async()
        for token in tokens - set(self.handlers):
            handler = AsyncSocketModeHandler(self.app, token)
            try:
                await handler.connect_async()
            except Exception:  # noqa: BLE001 - a revoked token must not stop the others
                log.warning("Socket Mode connection failed; retrying in %.0fs", SOCKET_REFRESH_S, exc_info=True)
                continue
            self.handlers[token] = handler
            log.info("Socket Mode connected (%d connection(s))", len(self.handlers))

    async def close(self) -> None:
        for handler in self.handlers.values():
            await handler.close_async()
        self.handlers.clear()


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
