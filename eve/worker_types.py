"""Worker types kept in process: every enqueue needs one, and they change rarely.

`WorkerTypeCache.get()` reads all types once and answers from memory after that; a name
it does not know makes it read again (a type added since), so only unknown names cost a
query. Changes reach a long-running process through `invalidate()`: the API calls it
when PostgreSQL notifies `eve_worker_types` (migration 0003's trigger) and whenever its
listener (re)connects, since a change may have gone by unheard.
"""

from __future__ import annotations

from typing import Any

from eve.errors import InvalidWorkerType
from eve.models import WorkerType
from eve.queries import Q


class WorkerTypeCache:
    def __init__(self) -> None:
        self._types: dict[str, WorkerType] | None = None

    async def get(self, conn: Any, name: str) -> WorkerType:
        if not isinstance(name, str) or not name:
            raise InvalidWorkerType(str(name))
        if self._types is None or name not in self._types:
            cur = await conn.execute(Q.worker_types_list)
            self._types = {wt.id: wt for wt in (WorkerType.from_row(r) for r in await cur.fetchall())}
        try:
            return self._types[name]
        except KeyError:
            raise InvalidWorkerType(name) from None

    def peek(self, name: str) -> WorkerType | None:
        """The cached type, or None when it would take a query (not loaded, or unknown)."""
        return self._types.get(name) if self._types is not None else None

    def invalidate(self) -> None:
        self._types = None
