"""The console's first fetch, started by `eve ui` before Textual is imported.

Importing Textual and starting the app take most of a second; the first screen's data (a
token, then queue, workers, the first page of requests and the last hour's stats) takes a
few round trips to the API. Started first and awaited by the app's first refresh, the
answers arrive while the frame is being built instead of after it. No Textual here: this
module is imported before it, so it must stay cheap.
"""

from __future__ import annotations

import asyncio
from typing import Any

PAGE = 100  # requests per page, here and in the app


async def first_fetch(client: Any, *, worker_type: str | None = None, org: str | None = None) -> tuple[Any, ...]:
    """(queue, workers, first page, stats or None), as EveApp's refresh fetches them."""
    filters = {k: v for k, v in {"worker_type": worker_type, "org": org}.items() if v is not None}

    async def stats() -> dict[str, Any] | None:
        try:
            return await client.stats(window="1h", worker_type=worker_type, org=org)
        except Exception:  # noqa: BLE001 - optional, as in the app: an API without /stats shows none
            return None

    await client.authenticate()  # once, before the four requests below would each ask for a token
    return tuple(await asyncio.gather(client.queue(), client.workers(), client.list_requests(limit=PAGE, **filters),
                                      stats()))
