"""The tenants endpoints of the API (#19) as small calls on an EveClient (keys, members,
secrets, org, limits, audit). Kept beside the commands that use them, not in eve.client,
so the client's module stays the requests/queue surface."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

if TYPE_CHECKING:
    from eve.client import EveClient


# The --org option of every org-administration command (keys, members, secrets, org).
OrgOpt = Annotated[str | None, typer.Option("--org", help="Organization slug (default: your key's org).")]


def _org(org: str | None) -> dict[str, str]:
    return {"org": org} if org else {}


async def call(client: "EveClient", method: str, path: str, *, org: str | None = None, json: Any = None,
               params: dict[str, Any] | None = None) -> Any:
    kw: dict[str, Any] = {"params": {**_org(org), **(params or {})}}
    if json is not None:
        kw["json"] = json
    return await client._send(method, path, **kw)  # noqa: SLF001 - the client's one transport


def seg(text: str) -> str:
    """One path segment (emails have @, prefixes are safe)."""
    return quote(text, safe="@")
