"""Group completion for the worker: results that finish within a few ms share one statement.

Each request's task hands its outcome to `ResultWriter.complete()` and waits. A result
that arrives while nothing is being written goes at once (no added latency for a lone
result); results that arrive while a write is under way (a few ms: a round trip and a
WAL flush) wait for it and then go together, up to `max_batch`, in one
`queue.complete_many`: one statement and one commit for the group instead of one each,
which is what lets short jobs keep up with a queue like pgqueuer. (`window_s` adds a
fixed wait before each group; the tests use it, the worker does not need it.) Every waiter gets its own Result, or
ResultConflict when its request was not written, exactly as with `queue.complete()`.
`run` is the worker's `with_db`: it retries while the database is away, so a group is
held and retried, never dropped. The queue benchmark drives this same class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from eve import queue
from eve.errors import ResultConflict
from eve.models import Outcome, Request, Result

T = TypeVar("T")
Run = Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]


class ResultWriter:
    def __init__(self, run: Run, worker_id: str, *, window_s: float = 0.0, max_batch: int = 100) -> None:
        self.run = run
        self.worker_id = worker_id
        self.window_s = window_s
        self.max_batch = max_batch
        self._pending: list[tuple[Request, Outcome, asyncio.Future[Result]]] = []
        self._full = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def complete(self, request: Request, outcome: Outcome) -> Result:
        """Write this request's result together with whatever else finishes meanwhile."""
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((request, outcome, fut))
        if len(self._pending) >= self.max_batch:
            self._full.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        """One write at a time: what arrives during a write is the next group."""
        try:
            if self.window_s > 0:
                try:
                    await asyncio.wait_for(self._full.wait(), self.window_s)
                except asyncio.TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)  # results of the same loop iteration join the first
            while self._pending:
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                self._full.clear()
                await self._write(batch)
        except BaseException as exc:
            batch, self._pending = self._pending, []
            self._fail(batch, exc)
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[Request, Outcome, asyncio.Future[Result]]]) -> None:
        items = [(req, outcome) for req, outcome, _ in batch]
        try:
            written = await self.run(lambda c: queue.complete_many(c, self.worker_id, items))
        except Exception as exc:  # noqa: BLE001 - every waiter of the group hears about it
            self._fail(batch, exc)
            return
        except BaseException as exc:
            self._fail(batch, exc)
            raise
        for req, _, fut in batch:
            if fut.done():  # its waiter went away; the result is written all the same
                continue
            if req.id in written:
                fut.set_result(written[req.id])
            else:
                fut.set_exception(ResultConflict(
                    f"request {req.id} already has a result or is not held by {self.worker_id}"))

    @staticmethod
    def _fail(batch: list[tuple[Request, Outcome, asyncio.Future[Result]]], exc: BaseException) -> None:
        for _, _, fut in batch:
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
