"""Wait on a condition with a deadline — the tests' only way to wait."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import IO, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def async_wait_for(predicate: Callable[[], Awaitable[T]], timeout: float, what: str,
                         interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


class LineReader:
    """Lines of a child's pipe, read by a thread, so a test waits on them with a deadline.

    `readline()` on a pipe blocks until the child writes or exits; a child that hangs
    would hang the test. Here the thread reads to the end of the pipe (so the child never
    blocks on a full pipe either) and the test asks for the next line, or for all lines
    once the child has exited, each with a timeout.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def next(self, timeout: float, what: str = "a line") -> str | None:
        """The next line, None at the end of the pipe; AssertionError after `timeout`."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; so far:\n{''.join(self.lines)}")
        if line is not None:
            self.lines.append(line)
        else:
            self._queue.put(None)  # stay at the end
        return line

    def until(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.0, deadline - time.monotonic()), what)
            if line is None:
                raise AssertionError(f"the output ended before {what}:\n{''.join(self.lines)}")
            if predicate(line):
                return line

    def rest(self, timeout: float) -> str:
        """Everything up to the end of the pipe (the child has exited or closed it)."""
        deadline = time.monotonic() + timeout
        while self.next(max(0.0, deadline - time.monotonic()), "the end of the output") is not None:
            pass
        return "".join(self.lines)
