"""`eve api ...`: serve the HTTP API (implemented in eve.daemons.api, loaded lazily)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Serve the HTTP API.", no_args_is_help=True)
