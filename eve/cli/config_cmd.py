"""`eve config set|get|list`: where the CLI finds the API and its key."""

from __future__ import annotations

from typing import Annotated

import typer

from eve import config as cfg
from eve.cli.output import console

app = typer.Typer(help="CLI settings (api-url, api-key) in ~/.config/eve/config.toml.", no_args_is_help=True)


@app.command("set")
def set_(name: Annotated[str, typer.Argument(help="api-url or api-key.")],
         value: Annotated[str, typer.Argument(help="The value.")]) -> None:
    """Store a setting (the file is created with mode 0600)."""
    path = cfg.write_value(name, value)
    shown = cfg.mask(value) if name == "api-key" else value
    console().print(f"{name} = {shown}  ({path})")


@app.command("get")
def get(name: Annotated[str, typer.Argument(help="api-url or api-key.")],
        show_secret: Annotated[bool, typer.Option("--show-secret", help="Print the key itself.")] = False) -> None:
    """Print the effective value of a setting (after env and defaults)."""
    if name not in cfg.KEYS:
        raise typer.BadParameter(f"unknown setting {name!r}; known: {', '.join(cfg.KEYS)}")
    c = cfg.resolve()
    if name == "api-url":
        typer.echo(c.api_url)
    else:
        typer.echo((c.api_key or "") if show_secret else cfg.mask(c.api_key))


@app.command("list")
def list_() -> None:
    """Every setting with its effective value and where it came from."""
    c = cfg.resolve()
    typer.echo(f"api-url = {c.api_url}  ({c.api_url_source})")
    typer.echo(f"api-key = {cfg.mask(c.api_key)}  ({c.api_key_source})")
    typer.echo(f"file    = {cfg.config_path()}")
