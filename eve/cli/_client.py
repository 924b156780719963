"""Running an API call from a command: config → EveClient → result, errors mapped once."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from eve.config import resolve
from eve.errors import ValidationError

if TYPE_CHECKING:
    from eve.client import EveClient

T = TypeVar("T")

JsonOpt = typer.Option(False, "--json", help="Print the API's JSON and nothing else (for jq).")


def api_url_flag(ctx: typer.Context) -> str | None:
    root = ctx.find_root()
    return (root.obj or {}).get("api_url") if root else None


def with_client(ctx: typer.Context, fn: Callable[["EveClient"], Awaitable[T]]) -> T:
    """Run fn(client) with the configured API URL and key; EveErrors reach main() as one line."""
    from eve.client import ApiError, EveClient  # httpx loads only when a command talks to the API

    cfg = resolve(api_url_flag(ctx))

    # an agent's own credential (set by its worker) comes first: it is all the agent has
    agent_token = os.environ.get("EVE_API_TOKEN") or None

    async def go() -> T:
        async with EveClient(cfg.api_url, api_key=None if agent_token else cfg.api_key, token=agent_token) as client:
            return await fn(client)

    try:
        return asyncio.run(go())
    except ApiError as exc:
        if exc.status == 404 and exc.code == "not_found":
            raise ApiError(404, "not_found", _not_found(exc.message)) from None
        raise


def _not_found(message: str) -> str:
    m = re.search(r"request ([0-9a-f-]{36})", message)
    return f"request {m.group(1)} not found" if m else message


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_timeout_ms(text: str) -> int:
    """'30m', '90s', '2h', '1500ms', '45' (seconds) → milliseconds."""
    m = _DURATION.match(text.lower())
    if not m:
        raise ValidationError(f"--timeout {text!r} is not a duration like 30m, 90s, 2h")
    value = float(m.group(1))
    factor = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "h": 3_600_000}[m.group(2)]
    return int(value * factor)


def short(request_id: Any) -> str:
    return str(request_id)[:8]


__all__ = ["JsonOpt", "parse_timeout_ms", "short", "with_client"]
