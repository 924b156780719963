"""`eve ui`: the Textual operator console (eve.tui, loaded lazily so `eve --help` stays fast)."""

from __future__ import annotations

import asyncio
import importlib
from typing import Annotated

import typer

from eve.cli._client import api_url_flag, parse_timeout_ms
from eve.errors import AuthError


def ui(
    ctx: typer.Context,
    api_url: Annotated[str | None, typer.Option("--api-url", help="API base URL (default: the CLI config).")] = None,
    refresh: Annotated[str, typer.Option(help="Refresh interval, e.g. 2s (at least 1s).")] = "2s",
    read_only: Annotated[bool, typer.Option("--read-only",
                                            help="Hide and disable replay, cancel, drain and new.")] = False,
    worker_type: Annotated[str | None, typer.Option("--worker-type", "-t", help="Only this worker type.")] = None,
    org: Annotated[str | None, typer.Option(help="Only this org (operators).")] = None,
) -> None:
    """Open the operator console: stats, alerts, queue, workers, a search over all requests, live tail.

    Keys: ? help · : or ctrl+p commands · / search (status:failed type:x since:1h words) ·
    j/k/g/G move · enter open · esc back · n new · space mark, C/R cancel/replay marked ·
    < > sort · r/e/c replay, edit+replay, cancel · w workers (o open request, d drain) ·
    p pause · t UTC/local · +/- refresh rate · f follow tail · q or ctrl+c quit.
    """
    from eve.client import EveClient
    from eve.config import resolve

    cfg = resolve(api_url or api_url_flag(ctx))
    if not cfg.api_key:
        raise AuthError("no API key configured: run `eve config set api-key KEY` or set EVE_API_KEY")
    seconds = parse_timeout_ms(refresh) / 1000

    async def run() -> None:
        async with EveClient(cfg.api_url, api_key=cfg.api_key) as client:
            # The first screen's data is fetched while Textual is imported (in a thread) and
            # started: the frame and the data arrive together instead of one after the other.
            prefetch = importlib.import_module("eve.tui.prefetch")
            first = asyncio.ensure_future(prefetch.first_fetch(client, worker_type=worker_type, org=org))
            try:
                app_module = await asyncio.to_thread(importlib.import_module, "eve.tui.app")
                app = app_module.EveApp(client, refresh_s=seconds, read_only=read_only, worker_type=worker_type,
                                        org=org, first_fetch=first)
                await app.run_async()
            finally:
                first.cancel()  # a no-op once the app took it; else nothing is left running or unread
                await asyncio.gather(first, return_exceptions=True)

    asyncio.run(run())
