"""Helpers every CLI module shares: async running, errors, the database DSN."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from eve.errors import EveError

T = TypeVar("T")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DSN_HELP = "PostgreSQL URL (default: $DATABASE_URL)."


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def die(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def require_dsn(dsn: str | None) -> str:
    value = dsn or os.environ.get("DATABASE_URL")
    if not value:
        die("no database given: pass --database-url or set DATABASE_URL (e.g. the DSN `eve up` prints)", 2)
    return value


def debug_enabled() -> bool:
    return os.environ.get("EVE_DEBUG", "") not in ("", "0", "false", "no")


def report_eve_error(exc: EveError) -> int:
    """Print an expected error as one line; the traceback only with EVE_DEBUG=1."""
    if debug_enabled():
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    err_console.print(f"[red]error:[/red] {exc.message}", markup=True, soft_wrap=True)
    return 1
