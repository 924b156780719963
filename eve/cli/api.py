"""`eve api ...`: serve the HTTP API (eve.daemons.api, loaded lazily by name)."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

app = typer.Typer(help="Serve the HTTP API.", no_args_is_help=True)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(envvar="EVE_API_HOST", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="EVE_API_PORT", help="TCP port.")] = 3000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the API (Litestar on uvicorn).

    Needs DATABASE_URL and JWT_SECRET (at least 32 bytes; e.g. `openssl rand -hex 32`).
    EVE_TOKEN_TTL sets the token lifetime in seconds (default 3600); EVE_CORS_ORIGINS a
    comma-separated list of allowed origins (CORS is off by default). Give it a login that
    is a member of eve_api only (`eve db roles` makes eve_api_login). EVE_LISTEN=off: behind
    PgBouncer in transaction pooling, live event streams poll instead of LISTEN.
    """
    importlib.import_module("eve.daemons.api.server").serve(host, port, workers)
