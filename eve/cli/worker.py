"""`eve worker ...`: run a worker daemon (implemented in eve.daemons.worker, loaded lazily)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run workers that claim requests and execute Claude Code variants.", no_args_is_help=True)
